"""`animate poses` through click's CliRunner."""
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
    assert names == [f"frame_{i:05d}.png" for i in range(6)] + ["sheet.png"]
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
