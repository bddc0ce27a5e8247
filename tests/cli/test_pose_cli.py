"""`animate poses` through click's CliRunner."""
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from animate.commands.poses import contact_sheet, poses
from animate.errors import PoseError
from motion.pose.draw import COLORS
from pose_helpers import person, write_openpose


def test_writes_frames_and_sheet(tmp_path):
    src = write_openpose(tmp_path / "p.json", [[person(nose=(32, 16, 1), neck=(32, 40, 1))]] * 6,
                         canvas=(64, 64))
    out = tmp_path / "out"
    result = CliRunner().invoke(poses, [str(src), "--out", str(out), "--frames", "6", "--width", "64",
                                        "--height", "64", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(6)] + ["keypoints.json", "sheet.png"]
    first = np.asarray(Image.open(out / "frame_00000.png"))
    assert first.shape == (64, 64, 3) and tuple(first[16, 32]) == COLORS[0]
    assert Image.open(out / "sheet.png").size == (3 * 66 + 2, 2 * 66 + 2)


def test_keyframes_file(tmp_path):
    src = tmp_path / "keys.yaml"
    src.write_text("0: {nose: [0.5, 0.25]}\n3: {nose: [0.5, 0.75]}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(poses, [str(src), "--out", str(out), "--frames", "4", "--width", "64",
                                        "--height", "64", "--kind", "keyframes"])
    assert result.exit_code == 0, result.output
    assert tuple(np.asarray(Image.open(out / "frame_00003.png"))[48, 32]) == COLORS[0]


def test_keypoints_json_round_trips_to_the_same_frames(tmp_path):
    """keypoints.json holds the drawn keypoints in output pixels; read back as an openpose-json source at
    the same size it draws the very same frames (a user can edit it in a pose editor and use it)."""
    from motion.pose import pose_frames

    src = tmp_path / "keys.yaml"
    src.write_text("0: {nose: [0.5, 0.2], neck: [0.5, 0.35], r_shoulder: [0.35, 0.35], r_elbow: [0.3, 0.6]}\n"
                   "5: {nose: [0.6, 0.25], neck: [0.55, 0.4], r_shoulder: [0.4, 0.4, 0.1], r_elbow: [0.2, 0.3]}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(poses, [str(src), "--out", str(out), "--frames", "6", "--width", "96",
                                        "--height", "64", "--kind", "keyframes"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "keypoints.json").read_text())
    assert len(doc) == 6 and doc[0]["canvas_width"] == 96 and doc[0]["canvas_height"] == 64
    flat = doc[0]["people"][0]["pose_keypoints_2d"]
    assert flat[:3] == [48.0, 12.8, 1.0]  # nose at (0.5, 0.2) of 96 x 64, confidence 1
    # The right shoulder's confidence falls below the 0.3 threshold on the last frame: exported as missing.
    assert doc[5]["people"][0]["pose_keypoints_2d"][6:9] == [0.0, 0.0, 0.0]
    again = pose_frames(out / "keypoints.json", frames=6, fps=8, width=96, height=64, cache_dir=tmp_path / "c")
    import yaml

    direct = pose_frames(yaml.safe_load(src.read_text()), frames=6, fps=8, width=96, height=64, kind="keyframes")
    for i, image in enumerate(again):
        assert np.array_equal(image, np.asarray(Image.open(out / f"frame_{i:05d}.png"))), i
        assert np.array_equal(image, direct[i]), i  # the command draws what the render would be given


def test_skeleton_images_have_no_keypoints_json(tmp_path):
    frames = tmp_path / "skel"
    frames.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(frames / "0.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(poses, [str(frames), "--out", str(out), "--frames", "2", "--width", "32",
                                        "--height", "32", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert not (out / "keypoints.json").exists() and (out / "sheet.png").exists()


def test_pose_source_error_becomes_pose_error(tmp_path):
    src = write_openpose(tmp_path / "empty.json", [[]], canvas=(64, 64))
    result = CliRunner().invoke(poses, [str(src), "--out", str(tmp_path / "out"), "--cache-dir",
                                        str(tmp_path / "c")])
    assert isinstance(result.exception, PoseError)
    assert "no people" in str(result.exception) and result.exception.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_contact_sheet_grid():
    frames = [np.full((32, 64, 3), i * 20, np.uint8) for i in range(5)]
    sheet = contact_sheet(frames, thumb=32, gap=2)
    assert sheet.shape == (2 * 18 + 2, 3 * 34 + 2, 3)  # 3 columns, 2 rows of 32x16 thumbnails
    assert sheet[2 + 18 + 5, 2 + 34 + 5, 0] == 80  # frame 4: row 1, column 1
