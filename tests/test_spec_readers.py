"""Every reader of a resolved spec (sidecar, gallery, history, `replay`, `animate encode`, serve's copy-as-script,
the events) takes every form the schema accepts: a piecewise adapter schedule through a real render, then specs
generated from the schema itself fed to each reader without rendering."""
import html
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from animate.cli import main
from animate.errors import ConfigError
from animate.jobs import render_key, spec_record
from animate.server.history import script_for
from animate.spec import parse_script, resolve


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


# ---------------------------------------------------------------- specs resolved from generated clips

@pytest.fixture(scope="module")
def beside(tmp_path_factory, kit):
    """A script's folder holding the files a clip may name: images, a video, a pose video."""
    import av

    folder = tmp_path_factory.mktemp("readers")
    for i, name in enumerate(("a.png", "b.png")):
        Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(folder / name)
    with av.open(str(folder / "walk.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 60 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return folder


class PlainDumper(yaml.SafeDumper):
    """Writes a repeated value out again: scripts refuse YAML aliases."""

    def ignore_aliases(self, data):
        return True


def resolved(folder, clip: dict):
    """The ClipSpecs of a one-clip script, or nothing where the resolver refuses the combination (image keyframes
    with pose guidance, say: each field was valid alone)."""
    path = folder / "gen.yaml"
    text = yaml.dump({"version": 1, "clips": [clip]}, Dumper=PlainDumper, sort_keys=False, allow_unicode=True)
    try:
        return resolve(parse_script(text, where=str(path), path=path))
    except ConfigError:
        return []


def test_copy_as_script_renders_the_same_frames_again(beside):
    # Each line of the copied script once went wrong: an empty negative the schema refuses, the SparseCtrl model
    # and the UNet written as records, a kit model's revision dropped, and a long clip's blend left to `auto`.
    (spec,) = resolved(beside, {"name": "kf", "model": {"source": "tiny", "revision": "main"}, "prompt": "x",
                                "frames": 130, "keyframes": {0: "a.png"}, "sparsectrl": "tiny-sparsectrl-file",
                                "unet": "tiny-file", "context": {"blend": "motion"}})
    clip = script_for(json.loads(json.dumps(spec_record(spec))))["clips"][0]
    assert "negative" not in clip and clip["model"] == {"source": "tiny", "revision": "main"}
    assert clip["sparsectrl"] == "tiny-sparsectrl-file" and clip["unet"] == "tiny-file"
    assert clip["keyframes"] == {"images": {"0": str(beside / "a.png")}, "scale": 1.0, "fit": "cover"}
    assert clip["context"]["blend"] == "motion"
    text = yaml.safe_dump({"version": 1, "clips": [clip]}, sort_keys=False)
    (again,) = resolve(parse_script(text, where=str(beside / "copy.yaml"), path=beside / "copy.yaml"))
    assert render_key(again, "fp32") == render_key(spec, "fp32")


def test_image_keyframes_refuse_a_refine_pass_given_as_an_empty_mapping(beside):
    # `refine: {}` is a refine pass at its defaults; the keyframes' check read it as no refine.
    clip = {"name": "kf", "model": "tiny", "prompt": "x", "keyframes": {0: "a.png"}}
    assert resolved(beside, clip) and not resolved(beside, {**clip, "refine": {}})
