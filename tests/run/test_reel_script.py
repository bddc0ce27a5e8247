"""`outputs: [reel]` at script level: one MP4 of all clips in order, with the exact frame count."""
import av
import yaml
from click.testing import CliRunner

from animate.cli import main


def test_script_reel(kit, tmp_path):
    script = tmp_path / "show.yaml"
    script.write_text(yaml.safe_dump({
        "version": 1, "outputs": ["reel"],
        "defaults": {"preset": "tiny", "frames": 4, "fps": 8, "width": 32, "height": 32, "steps": 1,
                     "outputs": ["png"]},
        "clips": [{"name": "one", "prompt": "a"}, {"name": "two", "prompt": "b", "frames": 6}]}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "o"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    reel = tmp_path / "o" / "show" / "reel.mp4"
    with av.open(str(reel)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.name == "h264"
    assert frames == 10
