"""Platform targets and byte budgets: outputs within limits, or one clear error with the smallest size."""
from __future__ import annotations

import numpy as np
import pytest

from animate.encode import encode_with_report
from animate.encode.targets import TARGETS, get_target
from animate.errors import EncodeError
from encode_helpers import decode_av, decode_gif, moving_clip, top_level_atoms


def test_table_is_consistent():
    for (fmt, name), t in TARGETS.items():
        assert t.fmt == fmt and t.name == name and t.source and (t.max_bytes or 0) > 0
    assert get_target("gif", "discord-emoji").max_bytes == 256_000
    assert get_target("gif", "x").max_bytes == 15_000_000


def test_gif_x_target_within_limits(tmp_path):
    clip = moving_clip(frames=6, h=40, w=64)
    path, report = encode_with_report("gif", clip, tmp_path / "x", fps=10, target="x")
    frames, _, _ = decode_gif(path)
    assert path.stat().st_size <= 15_000_000 and frames.shape[1:3] == (40, 64)
    assert report["target"] == "x" and report["bytes"] == path.stat().st_size


def test_gif_discord_emoji_shrinks_to_128(tmp_path):
    clip = moving_clip(frames=4, h=96, w=200)
    path, report = encode_with_report("gif", clip, tmp_path / "emoji", fps=10, target="discord-emoji")
    frames, _, _ = decode_gif(path)
    assert frames.shape[2] <= 128 and frames.shape[1] <= 128
    assert path.stat().st_size <= 256_000


def test_gif_budget_lowers_quality_then_size(tmp_path):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)  # incompressible: forces the search
    full = encode_with_report("gif", noise, tmp_path / "full", fps=10)[1]["bytes"]
    path, report = encode_with_report("gif", noise, tmp_path / "fit", fps=10, max_bytes=full // 3)
    assert path.stat().st_size <= full // 3
    assert report["fitted"] and report["quality"] < 85 or report["scale"] < 1


def test_unreachable_budget_names_smallest_size(tmp_path):
    clip = moving_clip(frames=4)
    with pytest.raises(EncodeError, match=r"cannot fit under 100 bytes; smallest reached [\d,]+ bytes"):
        encode_with_report("gif", clip, tmp_path / "tiny", fps=10, max_bytes=100)
    assert list(tmp_path.iterdir()) == []  # no output, no temp or trial files


def test_mp4_reels_loops_raises_fps_and_pads(tmp_path):
    clip = moving_clip(frames=8, h=32, w=48)  # 1 s at 8 fps, landscape
    path, report = encode_with_report("mp4", clip, tmp_path / "reel", fps=8, target="reels", preset="ultrafast")
    frames, info = decode_av(path)
    assert info["fps"] >= 24 and len(frames) / info["fps"] >= 3
    assert (info["width"], info["height"]) == (48, 86)  # 9:16 by padding (even sizes round up)
    assert abs(info["width"] / info["height"] - 9 / 16) < 0.01
    assert top_level_atoms(path).index("moov") < top_level_atoms(path).index("mdat")
    assert report["prepared"] and report["target"] == "reels"


def test_mp4_duplicate_fps_mode(tmp_path):
    clip = moving_clip(frames=12, h=32, w=32)
    path, report = encode_with_report("mp4", clip, tmp_path / "dup", fps=12, target="tiktok",
                                      fps_mode="duplicate", preset="ultrafast")
    frames, info = decode_av(path)
    assert info["fps"] == pytest.approx(24)
    np.testing.assert_allclose(frames[0].astype(int), frames[1].astype(int), atol=0)  # duplicated pair


def test_mp4_budget_raises_crf(tmp_path):
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    full = encode_with_report("mp4", noise, tmp_path / "a", fps=8, preset="ultrafast")[1]["bytes"]
    path, report = encode_with_report("mp4", noise, tmp_path / "b", fps=8, preset="ultrafast", max_bytes=full // 2)
    assert path.stat().st_size <= full // 2 and report["crf"] > 18
