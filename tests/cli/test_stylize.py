"""`animate stylize`: the output drops onto the source's timeline — same frame count, fps and size — and its
sidecar maps each output frame to its source frame."""
import json
from fractions import Fraction

import numpy as np
from click.testing import CliRunner
from encode_helpers import decode_av
from video_helpers import constant_rate, write_video

from animate.cli import main


def test_stylize_keeps_frames_fps_and_size(kit, tmp_path):
    source = write_video(tmp_path / "shot.mp4", constant_rate(37, 25), width=100, height=60, codec="libx264",
                         rate=25, time_base=Fraction(1, 25))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["stylize", str(source), "--prompt", "a watercolor fox", "--preset", "tiny",
                                       "--steps", "1", "--strength", "0.5", "--format", "mp4", "--out", str(out),
                                       "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    frames, info = decode_av(out / "stylize" / "shot.mp4")
    assert len(frames) == 37 and info["fps"] == 25 and (info["width"], info["height"]) == (100, 60)
    assert frames[0].shape == (60, 100, 3)
    sidecar = json.loads((out / "stylize" / "shot.json").read_text())
    assert sidecar["spec"]["width"] == 104 and sidecar["spec"]["height"] == 64  # rendered at multiples of 8
    assert sidecar["info"]["cropped_to"] == [100, 60]
    mapping = sidecar["info"]["source_frames"]
    assert [m["source_frame"] for m in mapping] == list(range(37))
    assert [m["source_time"] for m in mapping] == [round(k / 25, 6) for k in range(37)]
    # 37 frames are more than the tiny adapter's window: the clip went through context windows.
    assert len(sidecar["info"]["context"]["windows"]) > 1
    assert np.asarray(frames).std() > 3


def test_stylize_takes_the_resource_limits(kit, tmp_path):
    from cli_helpers import assert_one_error_line

    source = write_video(tmp_path / "shot.mp4", constant_rate(9, 25), width=48, height=32, codec="libx264",
                         rate=25, time_base=Fraction(1, 25))
    out = tmp_path / "out"
    common = ["stylize", str(source), "--prompt", "a fox", "--preset", "tiny", "--steps", "1", "--format", "png",
              "--out", str(out), "--quiet", "--device", "cpu"]
    result = CliRunner().invoke(main, [*common, "--limit", "video=1KB"])
    assert_one_error_line(result, out, "video file 'shot.mp4'", "more than the limit of 1 kB", "--limit video=")
    result = CliRunner().invoke(main, [*common, "--limit", "pixels=1000"])
    assert_one_error_line(result, out, "pixels", "--limit pixels=")
    result = CliRunner().invoke(main, [*common, "--limit", "video=none"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "stylize").glob("shot/*.png")) or list((out / "stylize").rglob("*.png"))) == 9
