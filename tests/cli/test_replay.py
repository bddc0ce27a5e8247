"""`animate replay` re-renders a clip's exact frames from a GIF's or MP4's embedded metadata."""
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from animate.cli import main


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, kit):
    tmp = tmp_path_factory.mktemp("replay")
    script = tmp / "orig.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 2, "guidance": 1.5, "seed": 11,
        "prompt": {0: "a kite", 2: "a balloon"}, "negative": "dark", "outputs": ["gif", "mp4", "png"],
        "adapters": [{"name": "pan", "source": "tiny-pan-left", "weight": 0.7}]}, "clips": [{"name": "sky"}]}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp / "out"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return tmp / "out" / "orig"


@pytest.mark.parametrize("source", ["sky.gif", "sky.mp4", "sky.json"])
def test_replay_reproduces_frames(rendered, tmp_path, source):
    result = CliRunner().invoke(main, ["replay", str(rendered / source), "--out", str(tmp_path), "--format", "png",
                                       "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(png_frames(tmp_path / "replay" / "sky"), png_frames(rendered / "sky"))


def test_replay_without_metadata(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.gif")
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "plain.gif"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no animate metadata" in result.output
