"""An image whose header claims far more pixels than the file holds (a decompression bomb) is one line, exit 2,
wherever an image is read: keyframes, pose frames, `animate encode` inputs."""
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate.cli import main
from cli_helpers import assert_one_error_line


def bomb_png(path, width=100_000, height=100_000):
    """A real 4x4 PNG whose IHDR is rewritten to claim width x height (CRC fixed, so Pillow trusts it)."""
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def test_the_crafted_header_is_what_pillow_refuses(tmp_path):
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb_png(tmp_path / "b.png"))


@pytest.mark.parametrize("command", ["check", "render"])
def test_a_keyframe_bomb_is_one_line(kit, tmp_path, command):
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "first.png")
    bomb_png(tmp_path / "last.png")
    script = tmp_path / "kf.yaml"
    script.write_text("version: 1\ndefaults:\n  preset: tiny\n  sparsectrl: tiny\nclips:\n  - name: still\n"
                      "    frames: 8\n    prompt: a lighthouse\n    keyframes: {0: first.png, 7: last.png}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [command, str(script), "--out", str(out)])
    assert_one_error_line(result, out, "clip still", "keyframes[7]", "last.png", "too large to decode safely",
                          "resize it")
    assert not (out / "kf" / "still.gif").exists()


def test_a_pose_frame_bomb_is_one_line(kit, tmp_path):
    poses = tmp_path / "poses"
    poses.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(poses / "0001.png")
    bomb_png(poses / "0002.png")
    script = tmp_path / "p.yaml"
    script.write_text("version: 1\ndefaults:\n  preset: tiny\nclips:\n  - name: dance\n    frames: 2\n"
                      "    prompt: a dancer\n    pose: {source: poses, controlnet: tiny, kind: skeleton}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "too large to decode safely" in result.output


def test_an_encode_input_bomb_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["encode", str(bomb_png(tmp_path / "in.webp")), "--format", "gif",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
