"""Jobs: one render, many outputs. Adding or changing outputs re-encodes from the frame store without a pipeline
call; encoders overlap the next clip's denoising; every reader of frames uses the lossless store."""
import json
import threading

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from animate.cli import main

BASE = {"preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "prompt": "a boat"}


def write_script(path, clips, **defaults):
    path.write_text(yaml.safe_dump({"version": 1, "defaults": {**BASE, **defaults}, "clips": clips}))
    return path


def render(script, out, *extra):
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu", *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def pipeline_calls(monkeypatch):
    """Counts calls of the diffusers pipelines themselves (not only of our Renderer)."""
    from diffusers import AnimateDiffPipeline

    calls = []
    original = AnimateDiffPipeline.__call__

    def counting(self, *a, **kw):
        calls.append(kw.get("num_frames"))
        return original(self, *a, **kw)

    monkeypatch.setattr(AnimateDiffPipeline, "__call__", counting)
    return calls


def stat_of(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_adding_and_changing_outputs_re_encodes_only_what_changed(kit, tmp_path, pipeline_calls):
    script, out = tmp_path / "s.yaml", tmp_path / "out"
    write_script(script, [{"name": "c1"}], outputs={"gif": {}, "mp4": {}})
    render(script, out)
    assert len(pipeline_calls) == 1
    root = out / "s"
    gif, mp4 = root / "c1.gif", root / "c1.mp4"
    before = {p: stat_of(p) for p in (gif, mp4)}

    write_script(script, [{"name": "c1"}], outputs={"gif": {}, "mp4": {}, "webm": {}})
    render(script, out)
    assert len(pipeline_calls) == 1  # no pipeline call: frames came from the store
    assert (root / "c1.webm").stat().st_size > 0
    assert {p: stat_of(p) for p in (gif, mp4)} == before  # the other outputs were not rewritten
    sidecar = json.loads((root / "c1.json").read_text())
    assert set(sidecar["outputs"]) == {"gif", "mp4", "webm"} and set(sidecar["encoders"]) == {"gif", "mp4", "webm"}

    write_script(script, [{"name": "c1"}], outputs={"gif": {"quality": 40}, "mp4": {}, "webm": {}})
    webm = stat_of(root / "c1.webm")
    render(script, out)
    assert len(pipeline_calls) == 1
    assert stat_of(mp4) == before[mp4] and stat_of(root / "c1.webm") == webm and stat_of(gif) != before[gif]

    write_script(script, [{"name": "c1", "prompt": "a red boat"}], outputs={"gif": {"quality": 40}, "mp4": {},
                                                                           "webm": {}})
    render(script, out)
    assert len(pipeline_calls) == 2  # the prompt determines the frames: a new render
    entries = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert len({e["render_key"] for e in entries}) == 2
    sidecar = json.loads((root / "c1.json").read_text())
    assert sidecar["spec_hash"] == entries[-1]["spec_hash"]  # one hash for the manifest and the sidecar


def test_stored_frames_are_the_rendered_frames(kit, tmp_path, renderer):
    from animate.events import Events
    from animate.outputs.framestore import FrameStore
    from animate.run.runner import run_specs
    from animate.spec import spec_from_fields

    spec = spec_from_fields({**BASE, "outputs": ["gif"]}, name="one")[0]
    expected = renderer.render(spec).frames
    run_specs([spec], out=tmp_path, script_stem="api", renderer=renderer, events=Events())
    sidecar = json.loads((tmp_path / "api" / "one.json").read_text())
    stored = FrameStore(tmp_path).load(sidecar["render_key"])
    assert stored.dtype == np.uint8 and np.array_equal(stored, expected)


def test_encode_and_reel_read_the_frame_store_not_a_fitted_output(kit, tmp_path, pipeline_calls):
    from animate.outputs.readback import read_frames
    from animate.outputs.framestore import FrameStore

    script, out = tmp_path / "fit.yaml", tmp_path / "out"
    script.write_text(yaml.safe_dump({"version": 1, "outputs": ["reel"], "defaults": {
        **BASE, "width": 48, "height": 32, "fps": 12, "outputs": {"mp4": {"target": "reels"}}},
        "clips": [{"name": "a"}, {"name": "b", "prompt": "a tree"}]}))
    render(script, out)
    root = out / "fit"
    frames, fps = read_frames(root / "a.json")
    key = json.loads((root / "a.json").read_text())["render_key"]
    assert np.array_equal(frames, FrameStore(out).load(key)) and fps == 12  # the sidecar's fps, under `spec`
    (root / "a.mp4").write_bytes(b"not a video any more")  # the fitted file beside them changes nothing
    frames_again, _ = read_frames(root / "a.json")
    assert np.array_equal(frames_again, frames)

    result = CliRunner().invoke(main, ["encode", str(root / "a.json"), "--format", "gif", "--target",
                                       "slack-emoji", "--out", str(tmp_path / "emoji")])
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(tmp_path / "emoji" / "a-slack-emoji.gif") as im:
        assert im.n_frames == 4 and im.size[0] / im.size[1] == pytest.approx(48 / 32, rel=0.1)

    reel = read_frames(root / "reel.mp4")[0]
    assert len(reel) == 8 and reel.shape[1:3] == (32, 48)  # 4 + 4 stored frames, no letterbox, no interpolation
    assert len(pipeline_calls) == 2


def test_encoders_overlap_the_next_clips_denoising(kit, tmp_path, renderer, monkeypatch):
    """Clip N's encoder waits until clip N+1 has taken a denoising step: a runner that encodes in series with
    rendering would time out here, and the event order would show it."""
    import animate.run.runner
    from animate.events import EncodeDone, Events, Recorder, Step
    from animate.run.runner import run_specs
    from animate.spec import spec_from_fields

    specs = [spec_from_fields({**BASE, "outputs": ["gif", "png"], "seed": i}, name=f"c{i}")[0] for i in range(4)]
    recorder = Recorder()
    stepped = {s.stem: threading.Event() for s in specs}

    def mark(event):
        if isinstance(event, Step):
            stepped[event.clip].set()

    original = animate.encode.encode_with_report

    def gated(fmt, frames, path, **kw):
        index = int(path.name[1])
        if index + 1 < len(specs):
            stepped[f"c{index + 1}"].wait(timeout=60)
        return original(fmt, frames, path, **kw)

    monkeypatch.setattr(animate.run.runner, "encode_with_report", gated)  # where the runner looks it up
    run_specs(specs, out=tmp_path, script_stem="overlap", renderer=renderer, events=Events(recorder, mark))
    events = recorder.events
    for n in range(3):
        last_encode = max(i for i, e in enumerate(events) if isinstance(e, EncodeDone) and e.clip == f"c{n}")
        next_step = min(i for i, e in enumerate(events) if isinstance(e, Step) and e.clip == f"c{n + 1}")
        assert next_step < last_encode, recorder.names()
    names = recorder.names()
    assert names[0] == "plan" and names[-1] == "summary" and names.count("clip_done") == 4


def test_at_most_max_pending_clips_wait_for_encoders(kit, tmp_path, renderer, monkeypatch):
    """The first clip's GIF encoder is held until a third clip starts rendering (or 5 s pass). A runner that
    rendered ahead without bound would render it at once; with max_pending=2 a render starts only while at most
    one earlier clip still waits for its encoders."""
    import animate.run.runner
    from animate.events import Events
    from animate.run.runner import run_specs
    from animate.spec import spec_from_fields

    specs = [spec_from_fields({**BASE, "outputs": ["gif"], "seed": i}, name=f"m{i}")[0] for i in range(4)]
    original_encode, original_render = animate.encode.encode_with_report, type(renderer).render
    third_render = threading.Event()
    counts = {"rendered": 0, "done": 0}
    waiting_at_render = []

    def held(fmt, frames, path, **kw):
        if path.name.startswith("m0"):
            third_render.wait(timeout=5)
        return original_encode(fmt, frames, path, **kw)

    def counting(self, spec, *a, **kw):
        waiting_at_render.append(counts["rendered"] - counts["done"])
        counts["rendered"] += 1
        if counts["rendered"] == 3:
            third_render.set()
        return original_render(self, spec, *a, **kw)

    def watch(event):
        if event.name == "clip_done":
            counts["done"] += 1

    monkeypatch.setattr(animate.run.runner, "encode_with_report", held)  # where the runner looks it up
    monkeypatch.setattr(type(renderer), "render", counting)
    summary = run_specs(specs, out=tmp_path, script_stem="bounded", renderer=renderer, events=Events(watch),
                        max_pending=2, workers=1)
    assert summary.rendered == [s.stem for s in specs]
    assert max(waiting_at_render) == 1, waiting_at_render  # m1 renders while m0 waits; m2 only after m0 is done


def test_check_says_what_is_up_to_date_and_what_would_be_encoded(kit, tmp_path):
    script, out = tmp_path / "chk.yaml", tmp_path / "out"
    write_script(script, [{"name": "c1"}, {"name": "c2", "prompt": "a tree"}], outputs=["gif"])
    render(script, out, "--only", "c1")
    write_script(script, [{"name": "c1"}, {"name": "c2", "prompt": "a tree"}], outputs=["gif", "webm"])
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output.splitlines()[0])
    clips = {c["clip"]: c for c in plan["clips"]}
    assert clips["c1"]["status"] == "encode" and clips["c1"]["encode"] == ["webm"]
    assert clips["c2"]["status"] == "render" and clips["c2"]["encode"] == ["gif", "webm"]
    assert plan["frame_store"]["entries"] == 1 and plan["frame_store"]["bytes"] > 0
    text = CliRunner().invoke(main, ["check", str(script), "--out", str(out)]).output
    assert "c1: encode from stored frames → webm" in text and "frame store: 1 clip(s)" in text
    render(script, out)
    text = CliRunner().invoke(main, ["check", str(script), "--out", str(out)]).output
    assert "c1: up to date" in text and "c2: up to date" in text


def test_clean_prunes_frames_no_manifest_needs(kit, tmp_path):
    from animate.outputs.framestore import FrameStore

    script, out = tmp_path / "cl.yaml", tmp_path / "out"
    write_script(script, [{"name": "c1"}], outputs=["gif"])
    render(script, out)
    write_script(script, [{"name": "c1", "prompt": "a tree"}], outputs=["gif"])
    render(script, out)
    store = FrameStore(out)
    assert store.size()[0] == 2
    result = CliRunner().invoke(main, ["clean", "--out", str(out)])
    assert result.exit_code == 0 and "deleted 1 stored clip(s)" in result.output
    assert store.size()[0] == 1
    current = json.loads((out / "cl" / "c1.json").read_text())["render_key"]
    assert store.keys() == [current]
    result = CliRunner().invoke(main, ["clean", "--out", str(out), "--all"])
    assert result.exit_code == 0 and store.size() == (0, 0)
    write_script(script, [{"name": "c1", "prompt": "a tree"}], outputs=["gif", "webm"])
    render(script, out)  # without stored frames a new output means a render again, and it still works
    assert (out / "cl" / "c1.webm").exists()


def test_gallery_lists_every_clip_the_manifest_holds(kit, tmp_path):
    script, out = tmp_path / "gal.yaml", tmp_path / "out"
    write_script(script, [{"name": "c1"}, {"name": "c2", "prompt": "a tree"}], outputs={"mp4": {"target": "reels"}})
    render(script, out, "--only", "c1")
    render(script, out, "--only", "c2")
    page = (out / "gal" / "index.html").read_text()
    assert '<h2>c1<small>' in page and '<h2>c2<small>' in page
    # The preview is made from the lossless frames, not from the letterboxed Reels file.
    assert ".previews/c1.webp" in page
    from PIL import Image

    with Image.open(out / "gal" / ".previews" / "c1.webp") as im:
        assert im.size == (32, 32) and im.n_frames == 4


def test_format_flag_keeps_a_presets_options(kit, tmp_path):
    preset = tmp_path / "social.yaml"
    preset.write_text(yaml.safe_dump({"outputs": {"mp4": {"target": "reels"}, "gif": {"quality": 50}}}))
    from animate.spec import spec_from_fields

    spec = spec_from_fields({**BASE, "preset": ["tiny", str(preset)], "outputs": ["mp4"]}, name="x")[0]
    assert spec.outputs == {"mp4": {"target": "reels"}}


def test_a_killed_writers_temp_frames_are_swept(kit, tmp_path, renderer, monkeypatch):
    """`kill -9` while the frame store writes leaves `.frames/.<key>.w…part.npz`: the next run removes it
    (a clip's frames can be large), and keeps a temp file whose writer still runs."""
    import os
    import subprocess
    import sys

    from animate.util.atomic import _host_tag
    from animate.events import Events
    from animate.run.runner import run_specs
    from animate.spec import spec_from_fields

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    store = tmp_path / ".frames"
    store.mkdir()
    gone = store / f".{'a' * 32}.w{_host_tag()}-{dead}-0123abcd.part.npz"
    alive = store / f".{'b' * 32}.w{_host_tag()}-{os.getpid()}-0123abcd.part.npz"
    for path in (gone, alive):
        path.write_bytes(b"half a clip")
    spec = spec_from_fields({**BASE, "outputs": ["gif"]}, name="one")[0]
    run_specs([spec], out=tmp_path, script_stem="sw", renderer=renderer, events=Events())
    assert not gone.exists() and alive.exists()

    # Another process dies mid-write while this one runs (and takes its clips over): swept at the end too.
    late = tmp_path / "sw" / f".two.w{_host_tag()}-{dead}-0123abcd.part.gif"
    original = type(renderer).render

    def dies_elsewhere(self, spec, *a, **kw):
        late.write_bytes(b"half a gif")
        return original(self, spec, *a, **kw)

    monkeypatch.setattr(type(renderer), "render", dies_elsewhere)
    two = spec_from_fields({**BASE, "outputs": ["gif"], "prompt": "a tree"}, name="two")[0]
    run_specs([spec, two], out=tmp_path, script_stem="sw", renderer=renderer, events=Events())
    assert not late.exists()


def test_clean_keeps_the_frames_of_a_clip_being_rendered_now(tmp_path):
    """A clip another process is rendering has stored its frames but not yet written its manifest line; its
    claim says so, and `clean` keeps its frames."""
    from animate.outputs.claims import Claims
    from animate.outputs.framestore import FrameStore

    store, key = FrameStore(tmp_path), "c" * 32
    store.save(key, np.zeros((2, 8, 8, 3), np.uint8))
    store.save("d" * 32, np.zeros((2, 8, 8, 3), np.uint8))
    claim = Claims(tmp_path, heartbeat=60).try_claim(key)
    try:
        result = CliRunner().invoke(main, ["clean", "--out", str(tmp_path)])
    finally:
        claim.release()
    assert result.exit_code == 0 and "deleted 1 stored clip(s)" in result.output, result.output
    assert store.keys() == [key]


def test_render_key_ignores_an_adapters_name_but_not_its_weight(kit):
    from animate.run.jobs import render_key
    from animate.spec import spec_from_fields

    def key(name, weight):
        fields = {**BASE, "outputs": ["gif"], "adapters": [{"name": name, "source": "tiny-zoom-in", "weight": weight}]}
        return render_key(spec_from_fields(fields, name="k")[0], "fp32")

    assert key("zoom", 0.8) == key("zoom-in", 0.8)  # a label: renaming it changes no frame
    assert key("zoom", 0.8) != key("zoom", 0.6)


def test_the_reel_is_rebuilt_when_its_options_or_clips_change_and_only_then(kit, tmp_path, pipeline_calls):
    script, out = tmp_path / "rl.yaml", tmp_path / "out"
    clips = [{"name": "a"}, {"name": "b", "prompt": "a tree"}]

    def write(reel, clips=clips):
        script.write_text(yaml.safe_dump({"version": 1, "reel": reel, "defaults": {**BASE, "outputs": ["gif"]},
                                          "clips": clips}))

    write({"fps": 8.0})
    render(script, out)
    reel = out / "rl" / "reel.mp4"
    first = stat_of(reel)
    render(script, out)
    assert stat_of(reel) == first  # nothing changed: not rebuilt
    write({"fps": 8.0, "crossfade": 0.125})
    render(script, out)
    assert stat_of(reel) != first  # the reel's own options changed
    second = stat_of(reel)
    write({"fps": 8.0, "crossfade": 0.125}, clips=clips[::-1])
    render(script, out)
    assert stat_of(reel) != second  # the clips' order changed
    assert len(pipeline_calls) == 2  # and never a render for it


@pytest.mark.parametrize("record", [{"outputs": ["gif"]}, {"outputs": {"gif": 5}}, {"outputs": {"gif": "a.gif"},
                                    "spec": {"outputs": {"gif": 3}}}, {"outputs": {"gif": "a.gif"}, "spec": "x"},
                                    {"outputs": {"gif": "a.gif"}, "spec": {"fps": "fast"}}])
def test_encode_refuses_a_hand_edited_sidecar_in_one_line(tmp_path, record):
    sidecar = tmp_path / "a.json"
    sidecar.write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["encode", str(sidecar), "--format", "webm", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        f"error: encode INPUT: {str(sidecar)!r} is not a clip sidecar (no 'outputs' mapping); pass the clip's .json "
        "written beside its outputs, a video or a frame folder"]


def test_render_key_ignores_labels_and_pins_but_not_weights(kit):
    from dataclasses import replace

    from animate.run.jobs import render_key
    from animate.spec import spec_from_fields
    from animate.models.weights import source_digest

    spec = spec_from_fields({**BASE, "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": 0.5}]},
                            name="k")[0]
    key = render_key(spec, "fp32")
    zoom = spec.adapters[-1]
    pinned = replace(spec, adapters=spec.adapters[:-1] + (
        replace(zoom, source=replace(zoom.source, sha256=source_digest(zoom.source))),))
    renamed = replace(spec, name="other", adapters=spec.adapters[:-1] + (replace(zoom, name="zoomy"),),
                      outputs={"webm": {}}, fuse=not spec.fuse, decode_chunk=3)
    assert render_key(pinned, "fp32") == key and render_key(renamed, "fp32") == key
    reweighted = replace(spec, adapters=spec.adapters[:-1] + (replace(zoom, weight=0.6),))
    assert render_key(reweighted, "fp32") != key
    assert render_key(spec, "fp16") != key
    assert render_key(replace(spec, seed=spec.seed + 1), "fp32") != key


def test_clean_refuses_an_output_root_that_is_a_file_in_one_line(tmp_path):
    from cli_helpers import assert_one_error_line

    out = tmp_path / "taken"
    out.write_text("not a folder")
    result = CliRunner().invoke(main, ["clean", "--out", str(out)])
    assert_one_error_line(result, tmp_path / "nothing", "--out", "is a file")
    assert out.read_text() == "not a folder"
