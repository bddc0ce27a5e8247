"""ClipSpec's JSON form: every resolved spec comes back exactly from JSON; a bad record gets one line that
names the field and the value; the plain fields are declared once and agree everywhere."""
import json
from dataclasses import fields

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from animate.errors import ConfigError
from animate.models.sources import Source
from animate.models.schedulers import SCHEDULERS
from animate.spec import BUILTIN, OUTPUT_FORMATS, PLAIN, ClipFields, ClipSpec, parse_script, resolve, spec_from_fields
from animate.spec.resolved import Context, FreeInit

CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # a script is text: no NUL
text = st.text(CHARS, min_size=1, max_size=24)
finite = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
json_data = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | finite(-1e300, 1e300) | st.text(CHARS, max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(CHARS, max_size=6), inner, max_size=3),
    max_leaves=8)
names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)  # no "-s<n>": that is a multi-seed stem

# Sources the resolver classifies without touching the hub: the tiny kit, known names, hub ids with options.
PIN = "ab" * 32  # resolution checks a pin's form; its content is checked before loading (test_model_safety)
models = st.sampled_from(["tiny", "tiny-file", {"source": "tiny"}, "someone/base",
                          {"source": "someone/base", "revision": "v2"}, {"source": "tiny-file", "sha256": PIN}])
motion_adapters = st.sampled_from(["tiny", "tiny-motion-file", "tiny-lightning", "animatediff-v1-5-2",
                                   "someone/motion", {"source": "someone/motion", "weight_name": "m.safetensors"},
                                   {"source": "tiny", "sha256": PIN}])
adapter_sources = st.sampled_from(["tiny-zoom-in", "tiny-pan-left", "tiny-lcm", "zoom-in", "someone/lora",
                                   {"source": "someone/lora", "weight_name": "old.ckpt", "allow_pickle": True},
                                   {"source": "tiny-zoom-in", "sha256": PIN}])
schedule = lambda lo, hi: st.dictionaries(finite(0, 1), finite(lo, hi), min_size=1, max_size=4)  # noqa: E731
weights = finite(-2, 3) | st.builds(dict, start=finite(-2, 3), end=finite(-2, 3)) | schedule(-2, 3)
contexts = st.fixed_dictionaries({}, optional={
    "length": st.integers(2, 128), "overlap": st.integers(0, 127),
    "weighting": st.sampled_from(["flat", "pyramid", "delayed_reverse_sawtooth"]),
    "noise": st.sampled_from(["shuffle_context", "repeat_context", "random"])}).filter(
    lambda c: c.get("overlap", 0) < c.get("length", 128))
free_inits = st.fixed_dictionaries({}, optional={"iters": st.integers(1, 10), "fast": st.booleans(),
                                                 "method": st.sampled_from(["butterworth", "ideal", "gaussian"])})
init_videos = st.fixed_dictionaries({"source": st.just("pose.mp4")}, optional={
    "strength": finite(0.01, 1), "fps": st.none() | finite(0.5, 240), "start": finite(0, 60),
    "fit": st.sampled_from(["contain", "cover", "stretch", "pad"]), "enforce_inference_steps": st.booleans()})
refines = st.fixed_dictionaries({}, optional={"scale": finite(1, 4), "strength": finite(0.01, 1),
                                              "steps": st.none() | st.integers(1, 200)})
adapters = st.lists(st.fixed_dictionaries({"name": names, "source": adapter_sources},
                                          optional={"weight": weights,
                                                    "kind": st.sampled_from(["lcm", "motion", "style"])}),
                    max_size=3, unique_by=lambda a: a["name"])
seeds = st.integers(0, 2**63 - 1) | st.lists(st.integers(0, 2**40), min_size=1, max_size=3, unique=True)
outputs = st.lists(st.sampled_from(OUTPUT_FORMATS), min_size=1, max_size=3, unique=True) | st.dictionaries(
    st.sampled_from(OUTPUT_FORMATS), st.none() | st.dictionaries(st.text(CHARS, min_size=1, max_size=8), json_data,
                                                                 max_size=3), min_size=1, max_size=3)
KEYPOINTS = ["nose", "neck", "r_shoulder", "l_wrist"]


def keyframes(frames: int, values):
    return st.dictionaries(st.integers(0, frames - 1), values, min_size=1, max_size=4)


def pose(frames: int):
    body = st.dictionaries(st.sampled_from(KEYPOINTS), st.lists(finite(0, 1), min_size=2, max_size=3), min_size=1)
    return st.fixed_dictionaries(
        {"source": st.just("pose.mp4") | keyframes(frames, body | st.dictionaries(st.text(CHARS, max_size=6),
                                                                                  json_data, max_size=2)),
         "controlnet": st.sampled_from(["tiny", "tiny-openpose-file", {"source": "tiny"}])},
        optional={"scale": finite(0, 2) | schedule(0, 2), "start": finite(0, 0.5), "end": finite(0.51, 1),
                  "fit": st.sampled_from(["contain", "cover", "stretch"]),
                  "kind": st.sampled_from(["skeleton", "openpose-json", "keyframes", "person-video"]),
                  "source_fps": finite(0.01, 240), "overrun": st.sampled_from(["error", "hold", "loop"]),
                  "canvas": st.lists(st.integers(1, 16384), min_size=2, max_size=2), "threshold": finite(0, 1),
                  "smooth": st.booleans(), "complexity": st.sampled_from([0, 1, 2])})


def clip_options(frames: int) -> dict:
    """Strategies for every clip field but `frames` (keyframes must fall inside the clip)."""
    prompts = text | keyframes(frames, st.text(CHARS, max_size=12))
    return {
        "preset": st.sampled_from(["tiny", "lcm", "lightning", "reels", ["tiny", "social-x"], ["quality", "editing"]]),
        "model": models, "motion_adapter": motion_adapters, "adapters": adapters,
        "scheduler": st.sampled_from(list(SCHEDULERS)), "steps": st.integers(1, 200), "guidance": finite(0, 30),
        "fps": finite(0.001, 120), "width": st.integers(1, 64).map(lambda n: n * 8),
        "height": st.integers(1, 64).map(lambda n: n * 8), "seed": seeds, "prompt": prompts, "negative": prompts,
        "head": st.text(CHARS, max_size=8), "tail": st.text(CHARS, max_size=8),
        "interpolation": st.sampled_from(["linear", "slerp"]), "outputs": outputs, "pose": pose(frames),
        "fuse": st.booleans(), "decode_chunk": st.integers(1, 1024),
        "context": contexts, "loop": st.booleans(), "free_init": free_inits,
        "init_video": init_videos, "refine": refines,
    }


@st.composite
def scripts(draw):
    """A valid script as data: fields spread over `defaults` and up to three clips."""
    frames = draw(st.integers(2, 32))
    options = clip_options(frames)
    defaults = {"model": "tiny", "prompt": "a lighthouse", "frames": frames}  # what every clip needs
    for key in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=8)):
        defaults[key] = draw(options[key])
    clips = []
    for name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
        clip = {"name": name}
        for key in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6)):
            clip[key] = draw(options[key])
        clips.append(clip)
    return {"version": 1, "defaults": defaults, "clips": clips}


class PlainDumper(yaml.SafeDumper):
    """Writes a value out again where it repeats: scripts refuse YAML aliases."""

    def ignore_aliases(self, data):
        return True


def assert_round_trip(spec: ClipSpec) -> None:
    text = json.dumps(spec.to_dict(), allow_nan=False)  # plain JSON: no objects, no NaN
    back = ClipSpec.from_dict(json.loads(text))
    assert back == spec
    assert json.dumps(back.to_dict(), allow_nan=False) == text  # same types too (8.0 stays 8.0, keys stay ints)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, kit):
    path = tmp_path_factory.mktemp("roundtrip")
    (path / "pose.mp4").write_bytes(b"")  # resolution only checks that a pose file exists
    return path


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=scripts(), suffix=st.sampled_from([".yaml", ".json"]))
def test_every_resolved_spec_round_trips_through_json(folder, data, suffix):
    text = yaml.dump(data, Dumper=PlainDumper, sort_keys=False) if suffix == ".yaml" else json.dumps(data)
    path = folder / f"script{suffix}"
    try:
        specs = resolve(parse_script(text, where=str(path), suffix=suffix, path=path))
    except ConfigError as exc:  # context settings valid per layer can clash once merged (tested on its own)
        assume("context settings of every layer merged" not in str(exc))
        raise
    assert specs
    for spec in specs:
        assert_round_trip(spec)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_command_line_specs_round_trip(folder, data):
    options = clip_options(16)
    fields = {key: data.draw(options[key]) for key in data.draw(st.lists(st.sampled_from(
        sorted(k for k in options if k not in ("pose", "init_video"))), unique=True, max_size=8))}  # paths: a folder
    for spec in spec_from_fields({"model": "tiny", "prompt": "a kite", **fields}, name="cli"):
        assert spec.script == ""
        assert_round_trip(spec)


def test_round_trip_keeps_what_json_would_lose(folder):
    text = yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", "frames": 8}, "clips": [{
        "name": "walk", "seed": [3, 4], "prompt": {0: "a", 5: "b"}, "negative": {2: "dark"},
        "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": {"start": 0.2, "end": 1}},
                     {"name": "pan", "source": "tiny-pan-left", "weight": {1: 0.3, 0: 1, 0.5: 0.6}}],
        "outputs": {"gif": {"target": "x"}, "png": None}, "context": {"overlap": 2}, "free_init": {"fast": True},
        "pose": {"source": {0: {"nose": [0.5, 0.2]}, 7: {"nose": [0.4, 0.3]}}, "canvas": [64, 64],
                 "scale": {0: 1, 1: 0.5}}}]})
    first, second = resolve(parse_script(text, where=str(folder / "w.yaml"), path=folder / "w.yaml"))
    back = ClipSpec.from_dict(json.loads(json.dumps(first.to_dict())))
    assert back == first and second.stem == "walk-s4"
    assert list(back.prompt) == [0, 5] and list(back.negative) == [2] and list(back.pose.source) == [0, 7]
    assert back.adapters[1].weight == (0.2, 1.0) and isinstance(back.adapters[1].source, Source)
    assert back.adapters[2].weight == {0.0: 1.0, 0.5: 0.6, 1.0: 0.3} and list(back.adapters[2].weight) == [0.0, 0.5, 1.0]
    assert back.pose.scale == {0.0: 1.0, 1.0: 0.5} and back.context.overlap == 2
    assert back.free_init == FreeInit(iters=3, method="butterworth", fast=True) and back.loop is False
    assert back.adapters[1].source.role == "motion-lora" and back.pose.controlnet.role == "controlnet"
    assert back.outputs == {"gif": {"target": "x"}, "png": {}} and back.fps == 8.0 and back.preset == "tiny"


# ---------------------------------------------------------------- the record's shape, and what is refused

@pytest.fixture(scope="module")
def record(folder):
    (spec,) = resolve(parse_script(yaml.safe_dump({"version": 1, "clips": [{
        "name": "fox", "preset": "tiny", "frames": 4, "prompt": "a fox",
        "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": {"start": 0, "end": 1}}],
        "pose": {"source": {0: {"nose": [0.5, 0.5]}}}, "context": {"length": 16}}]}), where=str(folder / "f.yaml"),
        path=folder / "f.yaml"))
    return json.loads(json.dumps(spec.to_dict()))


def test_record_shape_is_what_sidecars_carry(record):
    assert list(record) == [f.name for f in fields(ClipSpec)]
    assert set(record["model"]) == {"ref", "kind", "role"}  # options at their defaults are left out
    assert record["adapters"][1] == {"name": "zoom", "source": record["adapters"][1]["source"], "kind": "motion",
                                     "weight": {"start": 0.0, "end": 1.0}}
    assert record["pose"]["controlnet"] == {"ref": "lllyasviel/control_v11p_sd15_openpose", "kind": "hub",
                                           "role": "controlnet"}
    assert record["pose"]["scale"] == 1.0 and record["pose"]["source"] == {"0": {"nose": [0.5, 0.5]}}


def test_record_without_role_reads_as_a_plain_model(record):
    old = {**record, "model": {"ref": record["model"]["ref"], "kind": "folder"}}  # sidecars before `role`
    assert ClipSpec.from_dict(old).model.role == "model"


def changed(record, path, value):
    out = json.loads(json.dumps(record))
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


DELETE = object()
BAD = [
    (("steps",), "6", "clip spec: steps: must be a whole number (got '6')"),
    (("steps",), 0, "clip spec: steps: must be between 1 and 200 (got 0)"),
    (("width",), 60, "clip spec: width: must be divisible by 8 (got 60); try 64"),
    (("fps",), "8", "clip spec: fps: must be a number (got '8')"),
    (("fuse",), "yes", "clip spec: fuse: must be true or false (got 'yes')"),
    (("scheduler",), "lcn", "clip spec: scheduler: unknown scheduler 'lcn'; did you mean `lcm`?"),
    (("seed",), -1, "clip spec: seed: must be between 0 and 9223372036854775807 (got -1)"),
    (("name",), "../x", "clip spec: name: a clip name becomes a file name"),
    (("prompt",), {"soon": "x"}, "clip spec: prompt.soon: keyframe keys must be frame numbers (got 'soon')"),
    (("outputs",), {"gif": 3}, "clip spec: outputs.gif: must be a mapping (got 3)"),
    (("outputs",), {"jpg": {}}, "clip spec: outputs.jpg: unknown output format 'jpg'"),
    (("model",), "tiny", "clip spec: model: must be a mapping (got 'tiny')"),
    (("model", "kind"), "cloud", "clip spec: model.kind: must be hub, folder or file (got 'cloud')"),
    (("model", "ref"), DELETE, "clip spec: model.ref: required field is missing"),
    (("model", "weights"), "x", "clip spec: model.weights: unknown field (got 'x')"),
    (("model", "allow_pickle"), 1, "clip spec: model.allow_pickle: must be true or false (got 1)"),
    (("model", "sha256"), 5, "clip spec: model.sha256: must be a string (got 5)"),
    (("adapters",), {}, "clip spec: adapters: must be a list (got {})"),
    (("adapters", 1, "weight"), "high", "clip spec: adapters[1].weight: must be a number (got 'high')"),
    (("adapters", 1, "weight", "end"), 9, "clip spec: adapters[1].weight.end: must be between -2 and 3 (got 9)"),
    (("adapters", 1, "kind"), "lora", "clip spec: adapters[1].kind: must be 'lcm', 'motion' or 'style' (got 'lora')"),
    (("pose", "scale"), 5, "clip spec: pose.scale: must be between 0 and 2 (got 5)"),
    (("pose", "scale"), {"2": 1.0}, "clip spec: pose.scale.2: must be between 0 and 1 (got '2')"),
    (("adapters", 1, "weight"), {"0.5": 7}, "clip spec: adapters[1].weight.0.5: must be between -2 and 3 (got 7)"),
    (("context",), None, "clip spec: context: must be a mapping (got None)"),
    (("context", "overlap"), 20, "clip spec: context: overlap (20) must be less than length (16)"),
    (("context", "noise"), "shuffle", "clip spec: context.noise: must be 'shuffle_context', 'repeat_context' or"),
    (("context", "weighting"), DELETE, "clip spec: context.weighting: required field is missing"),
    (("free_init",), {"iters": 0, "method": "ideal", "fast": False},
     "clip spec: free_init.iters: must be between 1 and 10 (got 0)"),
    (("free_init",), {"iters": 2}, "clip spec: free_init.method: required field is missing"),
    (("loop",), "yes", "clip spec: loop: must be true or false (got 'yes')"),
    (("pose", "fit"), DELETE, "clip spec: pose.fit: required field is missing"),
    (("pose", "source"), {"x": {}}, "clip spec: pose.source.x: keyframe keys must be frame numbers (got 'x')"),
    (("pose", "controlnet", "kind"), 3, "clip spec: pose.controlnet.kind: must be a string (got 3)"),
    (("frames",), DELETE, "clip spec: frames: required field is missing"),
    (("clip_skip",), 2, "clip spec: clip_skip: unknown field (got 2); was it written by another version of animate?"),
    (("stepz",), 2, "clip spec: stepz: unknown field (got 2); did you mean `steps`?"),
]


@pytest.mark.parametrize("path, value, expected", BAD, ids=[".".join(map(str, p)) + f"={v!r}"[:20]
                                                            for p, v, _ in BAD])
def test_bad_record_is_one_line_naming_field_and_value(record, path, value, expected):
    with pytest.raises(ConfigError) as info:
        ClipSpec.from_dict(changed(record, path, value))
    line = info.value.line()
    assert "\n" not in line
    assert line.startswith(expected), line


@pytest.mark.parametrize("value", [None, [], "spec", 3])
def test_record_must_be_a_mapping(value):
    with pytest.raises(ConfigError, match=r"^clip spec: must be a mapping \(got "):
        ClipSpec.from_dict(value)


# ---------------------------------------------------------------- one declaration per plain field

# ClipSpec fields that are not script fields, and script fields that never reach a ClipSpec.
SPEC_ONLY = {"name", "multi_seed", "script", "extra"}
SCRIPT_ONLY = {"description", "init_image", "sparsectrl"}  # the last two resolve into ClipSpec.keyframes


def test_clip_fields_and_clip_spec_agree():
    spec_fields = {f.name for f in fields(ClipSpec)}
    assert set(ClipFields.model_fields) - SCRIPT_ONLY == spec_fields - SPEC_ONLY
    for name, f in PLAIN.items():  # each plain script field is its ClipSpec declaration, made optional
        assert ClipFields.model_fields[name].annotation == (f.metadata["schema"] | None), name
        assert ClipFields.model_fields[name].default is None


def test_builtin_defaults_cover_the_plain_fields_and_are_valid():
    assert set(PLAIN) <= set(BUILTIN)
    assert set(BUILTIN) <= set(ClipFields.model_fields)
    ClipFields.model_validate(BUILTIN)  # a built-in default that its own schema refuses would fail here


# ---------------------------------------------------------------- free-form values are JSON data

@pytest.mark.parametrize("fragment, expected", [
    ("outputs: {mp4: {title: 2024-01-01}}",
     "s.yaml:5:28: clips[0].outputs.mp4.title: must be text, a number, true/false, a list or a mapping "
     "(got datetime.date(2024, 1, 1))"),
    ("outputs: {gif: {target: .nan}}", "s.yaml:5:29: clips[0].outputs.gif.target: must be a finite number (got nan)"),
    ("outputs: {gif: {opts: {1: 2}}}", "s.yaml:5:21: clips[0].outputs.gif.opts: keys must be text (got 1)"),
    ("pose: {source: {0: {nose: [.inf, 1]}}}",
     "s.yaml:5:31: clips[0].pose.source[0].nose: must be a finite number (got inf)"),
])
def test_free_form_values_must_survive_json(fragment, expected):
    # A date, NaN or a numeric key would come back from a sidecar as something else (or not at all).
    with pytest.raises(ConfigError) as info:
        parse_script(f"version: 1\nclips:\n  - name: a\n    prompt: x\n    {fragment}\n", where="s.yaml")
    assert info.value.lines == [expected]


@pytest.mark.parametrize("frames, context", [(4, {"length": None, "overlap": None}), (48, {"length": 16,
                                                                                           "overlap": 12})])
def test_record_from_before_motion_options_replays_as_it_rendered(record, frames, context):
    old = {k: v for k, v in record.items() if k not in ("context", "loop", "free_init")}
    spec = ClipSpec.from_dict({**old, "frames": frames})
    assert spec.loop is False and spec.free_init is None
    assert spec.context == Context(**context, weighting="pyramid", noise="shuffle_context", blend="motion")
