"""Reels: exact frame counts (moviepy drops ImageSequenceClip's last frame; we must not), tags, audio."""
from __future__ import annotations

import wave

import numpy as np
import pytest

pytest.importorskip("moviepy")

from animate.encode.reel import reel_frame_count, write_reel  # noqa: E402
from encode_helpers import decode_av, moving_clip, top_level_atoms  # noqa: E402


def _solid(n, rgb, h=32, w=48):
    out = np.zeros((n, h, w, 3), np.uint8)
    out[...] = rgb
    return out


def test_reel_exact_frames_in_order_with_tags(tmp_path):
    a, b = _solid(10, (200, 0, 0)), _solid(7, (0, 0, 200))
    path = write_reel([(a, 10), (b, 10)], tmp_path / "reel.mp4")
    frames, info = decode_av(path)
    assert len(frames) == 17 == reel_frame_count([(a, 10), (b, 10)], 10, 0.0)
    assert frames[9][..., 0].mean() > 150 and frames[10][..., 2].mean() > 150
    assert (info["codec"], info["profile"], info["primaries"], info["trc"], info["matrix"]) == \
        ("h264", "High", 1, 1, 1)
    assert top_level_atoms(path).index("moov") < top_level_atoms(path).index("mdat")


def test_reel_crossfade_and_resampled_fps(tmp_path):
    a, b = moving_clip(8), _solid(6, (0, 0, 200))  # 8 frames @ 8 fps = 1 s; 6 @ 12 fps = 0.5 s
    path = write_reel([(a, 8), (b, 12)], tmp_path / "x.mp4", fps=12, crossfade=0.25)
    frames, info = decode_av(path)
    assert len(frames) == 12 + 6 - 3 and info["fps"] == pytest.approx(12)
    mid = frames[10][..., 2].mean()  # inside the fade: between the two clips
    assert 20 < mid < 190


def test_reel_with_audio(tmp_path):
    import av

    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        t = np.arange(22050 * 3) / 22050
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    path = write_reel([(moving_clip(10), 10)], tmp_path / "a.mp4", audio=wav)
    with av.open(str(path)) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
    frames, _ = decode_av(path)
    assert len(frames) == 10
