"""Every reader of a resolved spec (sidecar, gallery, history, `replay`, `animate encode`, serve's copy-as-script,
the events) takes every form the schema accepts: a piecewise adapter schedule through a real render, then specs
generated from the schema itself fed to each reader without rendering."""
import functools
import html
import io
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from animate.cli import main
from animate.commands.replay import read_record, spec_from_record
from animate.errors import ConfigError
from animate.events import ClipDone, ClipStart, Error, JsonLines, Plan
from animate.outputs.framestore import FrameStore
from animate.run.jobs import plan_job, render_key, spec_record
from animate.outputs.layout import OutputLayout
from animate.run.plan import build_plan, print_plan
from animate.outputs.records import Records
from animate.server.history import history, script_for
from animate.spec import parse_script, resolve
from animate.spec.clipspec import labeled_sources
from motion.loras import weight_label
from tests.spec_strategies import Walk, form_id, forms


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


def test_json_events_are_one_line_each_whatever_the_text():
    # NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR stay raw in JSON strings; str.splitlines() broke `--json` lines
    # (a revision or prompt holding one reached the plan event) into pieces that are not JSON.
    stream = io.StringIO()
    message = "a\x85b\u2028c\u2029d é"
    JsonLines(stream)(Error(message=message))
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == message and "é" in line


# ---------------------------------------------------------------- every reader, every form the schema allows

WALK_FILES = {"image": ["a.png", "b.png"], "video": ["walk.mp4"], "pose": ["walk.mp4"]}
FRAMES = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (10, 200)])  # stand-ins: nothing renders here
READER_SETTINGS = settings(max_examples=3, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.filter_too_much])


# Every field of every model a clip holds, once per form its union allows (a weight as a number, a {start, end}
# ramp or a {progress: weight} schedule): a new field, or a new form of one, gets its own examples.
FORMS = forms()


def without(record: dict, *keys) -> dict:
    """A record less `keys`, and less every source's registry `role` (a hint copy-as-script need not keep)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not (k == "role" and "ref" in value)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip({k: v for k, v in record.items() if k not in keys})


@functools.cache
def walk(form) -> Walk:
    return Walk(WALK_FILES, form)


def fake_outputs(job) -> dict:
    """Every output of a job as a stand-in file (a folder for a PNG sequence), as `written` hands them over."""
    written = {}
    for fmt, path in job.paths.items():
        if fmt == "png":
            path.mkdir(parents=True, exist_ok=True)
            (path / "frame_00000.png").write_bytes(b"png")
        else:
            path.write_bytes(fmt.encode())
        written[fmt] = (path, {"bytes": 3})
    return written


def embedded(job, folder) -> list:
    """Outputs carrying the record as run.py embeds it: a PNG sequence and a GIF (the fake frames, at a rate every
    format plays: the clip's own is checked against each format before anything renders)."""
    from animate.encode import encode_with_report

    metadata = json.dumps(job.record, separators=(",", ":"), sort_keys=True, default=str)
    return [encode_with_report(fmt, FRAMES, folder / "clip", fps=8, metadata=metadata)[0] for fmt in ("png", "gif")]




@pytest.mark.parametrize("form", FORMS, ids=[form_id(f) for f in FORMS])
@READER_SETTINGS
@given(data=st.data())
def test_every_reader_takes_every_resolved_spec(kit, beside, tmp_path_factory, form, data):
    clip = data.draw(walk(form).clip(), label="clip")
    specs = resolved(beside, clip)
    assume(specs)
    spec = specs[-1]
    out = tmp_path_factory.mktemp("out")
    layout = OutputLayout(out, "gen")
    layout.prepare()
    store = FrameStore(out)
    records = Records(layout, store)
    job = plan_job(spec, layout, records.manifest, store, dtype="fp32")
    store.save(job.render_key, FRAMES, {"render_key": job.render_key, "clip": job.stem, "fps": spec.fps})
    plain_record = json.loads(json.dumps(job.record))

    # The sidecar: the record as JSON, every model it loads.
    records.finish(job, fake_outputs(job), timings={}, info={})
    sidecar_path = layout.sidecar(job.stem)
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["spec"] == plain_record
    assert set(sidecar["models"]) == {f"adapter:{name}" if name else field for field, name, _ in labeled_sources(spec)}

    # `replay`, from the sidecar and from an output's embedded metadata: the same spec, the same render key.
    for source in [sidecar_path, *embedded(job, tmp_path_factory.mktemp("meta"))]:
        back = spec_from_record(read_record(source))
        assert json.loads(json.dumps(spec_record(back))) == plain_record, source.name
        assert render_key(back, "fp32") == job.render_key
    # ... and a record made on another machine: every model of the offline kit is found in this machine's kit.
    elsewhere = json.loads(json.dumps(plain_record).replace(str(kit.parent), "/another/machine/cache"))
    assert json.loads(json.dumps(spec_record(spec_from_record(elsewhere)))) == plain_record

    # The gallery: a card per clip, every adapter's weight labelled as it was given.
    page = records.write_gallery().read_bytes().decode("utf-8")  # as written: no newline translation
    anchor = f"{spec.name}-s{spec.seed}"
    assert f'<article id="{html.escape(anchor)}">' in page
    for text in spec.prompt.values() if isinstance(spec.prompt, dict) else [spec.prompt]:
        assert html.escape(text) in page
    for adapter in spec.adapters:
        assert html.escape(f"{adapter.name}:{weight_label(adapter.weight)}") in page

    # Serve's history: plain JSON, the clip at its stem.
    (entry,) = history(out)
    assert entry["stem"] == job.stem and entry["name"] == spec.name and entry["seed"] == spec.seed
    json.dumps(entry, allow_nan=False)

    # Copy as script: YAML that renders the same frames again (the name, seed and every setting kept).
    text = yaml.safe_dump(script_for(sidecar["spec"]), sort_keys=False, allow_unicode=True)
    again = resolve(parse_script(text, where=str(beside / "copy.yaml"), path=beside / "copy.yaml"))
    assert [s.seed for s in again] == [spec.seed]
    assert render_key(again[0], "fp32") == job.render_key
    assert without(json.loads(json.dumps(spec_record(again[0]))), "multi_seed", "preset") == \
        without(plain_record, "multi_seed", "preset")

    # `animate encode` from the sidecar: the stored frames at the clip's fps.
    result = CliRunner().invoke(main, ["encode", str(sidecar_path), "--format", "png", "--json",
                                       "--out", str(tmp_path_factory.mktemp("enc"))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["frames"] == len(FRAMES) and report["fps"] == pytest.approx(spec.fps)

    # The events: the plan (as `--json` prints it and `check` shows it), a clip's start and end.
    stream = io.StringIO()
    sink = JsonLines(stream)
    plan = build_plan([spec], jobs=[job], device="cpu", dtype="fp32", out=out, store=store)
    for event in (Plan(**plan), ClipStart(clip=job.stem, seed=spec.seed, frames=spec.frames, steps=spec.steps,
                                          render_key=job.render_key, source="store"),
                  ClipDone(clip=job.stem, outputs=list(sidecar["outputs"].values()), encoded=[])):
        sink(event)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    json.dumps(lines, allow_nan=False)  # plain JSON: a pipeline's parser may refuse NaN
    assert [e["event"] for e in lines] == ["plan", "clip_start", "clip_done"]
    assert lines[0]["clips"][0]["clip"] == job.stem and lines[0]["clips"][0]["render_key"] == job.render_key
    print_plan([spec], jobs=[job], device="cpu", dtype="fp32", out=out, store=store)

