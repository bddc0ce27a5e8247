"""Re-encoding: read_frames from folders, videos, GIFs and sidecars; the `animate encode` command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from animate.commands.encode import encode_command
from animate.encode import encode
from animate.outputs.readback import read_frames
from animate.errors import EncodeError
from encode_helpers import decode_av, decode_gif, moving_clip


@pytest.fixture(scope="module")
def clip():
    return moving_clip(frames=5, h=32, w=48)


def test_read_ffv1_and_png_exact(clip, tmp_path):
    frames, fps = read_frames(encode("ffv1", clip, tmp_path / "c", fps=12.5))
    np.testing.assert_array_equal(frames, clip)
    assert fps == pytest.approx(12.5)
    for bits in (8, 16):
        frames, fps = read_frames(encode("png", clip, tmp_path / f"p{bits}", fps=10, bits=bits,
                                         metadata='{"fps": 10}'))
        np.testing.assert_array_equal(frames, clip)
        assert fps == 10


def test_read_mp4_and_gif(clip, tmp_path):
    frames, fps = read_frames(encode("mp4", clip, tmp_path / "c", fps=8, preset="ultrafast"))
    assert frames.shape == clip.shape and fps == pytest.approx(8)
    frames, fps = read_frames(encode("gif", clip, tmp_path / "c", fps=10))
    assert frames.shape == clip.shape and fps == pytest.approx(10)


def test_sidecar_prefers_lossless(clip, tmp_path):
    encode("ffv1", clip, tmp_path / "castle", fps=8)
    encode("gif", clip[:2], tmp_path / "castle", fps=8)
    (tmp_path / "castle.json").write_text(json.dumps({"fps": 8, "outputs": {"gif": "castle.gif",
                                                                            "ffv1": "castle.mkv"}}))
    frames, fps = read_frames(tmp_path / "castle.json")
    np.testing.assert_array_equal(frames, clip)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(EncodeError, match="not a clip sidecar"):
        read_frames(tmp_path / "bad.json")


def test_cli_encode_many_formats(clip, tmp_path):
    src = encode("ffv1", clip, tmp_path / "src", fps=8)
    out = tmp_path / "out"
    result = CliRunner().invoke(encode_command, [str(src), "--format", "gif,webm", "-f", "png",
                                                 "--fps", "12.5", "--interpolate", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frames, durations, _ = decode_gif(out / "src.gif")
    assert len(frames) == 10 and sum(durations) == 400  # 10 frames at 25 fps
    webm_frames, info = decode_av(out / "src.webm")
    assert len(webm_frames) == 10 and info["fps"] == pytest.approx(25)
    assert len(list((out / "src").iterdir())) == 10


def test_cli_target_and_json(clip, tmp_path):
    src = encode("ffv1", clip, tmp_path / "src", fps=8)
    result = CliRunner().invoke(encode_command, [str(src), "-f", "gif", "--target", "slack-emoji", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["target"] == "slack-emoji" and report["bytes"] <= 128_000
    assert (tmp_path / "src-slack-emoji.gif").exists()


def test_cli_user_errors(clip, tmp_path):
    src = encode("ffv1", clip, tmp_path / "src", fps=8)
    runner = CliRunner()
    result = runner.invoke(encode_command, [str(src), "-f", "avi"])
    assert result.exit_code == 2 and "unknown avi" in result.output
    result = runner.invoke(encode_command, [str(src), "-f", "png", "--target", "x"])
    assert result.exit_code == 2 and "gif and mp4 only" in result.output
    result = runner.invoke(encode_command, [str(src), "-f", "gif", "--max-bytes", "50"])
    assert isinstance(result.exception, EncodeError) and "smallest reached" in str(result.exception)


def test_cli_never_overwrites_input(clip, tmp_path):
    src = encode("mp4", clip, tmp_path / "c", fps=8, preset="ultrafast")
    before = src.read_bytes()
    assert CliRunner().invoke(encode_command, [str(src), "-f", "mp4"]).exit_code == 0
    assert src.read_bytes() == before and (tmp_path / "c-reencoded.mp4").exists()
