"""Every reader of a resolved spec (sidecar, gallery, history, `replay`, `animate encode`, serve's copy-as-script,
the events) takes every form the schema accepts: a piecewise adapter schedule through a real render, then specs
generated from the schema itself fed to each reader without rendering."""
import html
import json

import yaml
from click.testing import CliRunner

from animate.cli import main


def test_piecewise_adapter_schedule_renders_and_records(kit, tmp_path):
    # The clip rendered, then the gallery writer read the schedule as a {start, end} ramp and the run ended in a
    # traceback (KeyError: 'start').
    script = tmp_path / "fade.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 2, "width": 32, "height": 32, "steps": 2, "outputs": ["gif"]}, "clips": [{
            "name": "fading", "prompt": "a castle",
            "adapters": [{"name": "zoom-in", "source": "tiny-zoom-in", "weight": {0.0: 1.0, 0.5: 0.4, 1.0: 0.0}}]}]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    folder = out / "fade"
    sidecar = json.loads((folder / "fading.json").read_text())
    assert sidecar["spec"]["adapters"][-1]["weight"] == {"0.0": 1.0, "0.5": 0.4, "1.0": 0.0}
    page = (folder / "index.html").read_text()
    assert html.escape("zoom-in:1@0→0.4@0.5→0@1") in page
    assert json.loads((folder / "manifest.jsonl").read_text().splitlines()[-1])["key"] == "fading"
