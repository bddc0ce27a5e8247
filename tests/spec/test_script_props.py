"""Property tests: any text gives a Script or a ConfigError; a valid script round-trips through YAML."""
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from animate.errors import ConfigError
from animate.spec import OUTPUT_FORMATS, ClipModel, ScriptModel, parse_script

SETTINGS = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def parses_or_config_error(text: str, suffix: str) -> None:
    try:
        script = parse_script(text, where="s" + suffix, suffix=suffix)
    except ConfigError as exc:
        lines = exc.lines or [exc.line()]
        assert lines and all(line.startswith("s" + suffix) and "\n" not in line for line in lines)
    else:
        assert isinstance(script.model, ScriptModel)


@SETTINGS
@given(st.text(), st.sampled_from([".yaml", ".json", ".toml"]))
def test_any_text(text, suffix):
    parses_or_config_error(text, suffix)


@SETTINGS
@given(st.binary(), st.sampled_from([".yaml", ".json", ".toml"]))
def test_any_bytes(data, suffix):
    parses_or_config_error(data.decode("utf-8", "replace"), suffix)


# YAML-ish text: fragments of real scripts, glued with random punctuation, indentation and numbers.
FRAGMENTS = ["version: 1\n", "clips:\n", "  - name: a\n", "    prompt: x\n", "defaults:\n", "  model: a/b\n",
             "    seed: [1, 2]\n", "    prompt: {0: a, 12: b}\n", "&a ", "*a", "<<: ", "!!python/object:os.system ",
             "!!binary aGk=", "1e400", "1.0e+400", "9" * 5000, "---\n", "[", "]", "{", "}", ": ", "- ", "\t", "'",
             '"', "\\", "#", "%YAML 1.1\n", "2001-02-30", "? ", "|\n", ">\n", "~", "null", ".nan", "-.inf"]
yamlish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(string.printable, max_size=8),
                             st.integers().map(str)), max_size=30).map("".join)


@SETTINGS
@given(yamlish)
def test_yamlish_text(text):
    parses_or_config_error(text, ".yaml")


def nested(depth_chars: str):
    return st.integers(0, 400).map(lambda n: "clips: " + depth_chars[0] * n + depth_chars[1] * n)


@settings(max_examples=20, deadline=5000)
@given(st.one_of(nested("[]"), nested("{}")), st.sampled_from([".yaml", ".json"]))
def test_deep_nesting(text, suffix):
    if suffix == ".json":
        text = '{"clips": ' + text[len("clips: "):] + "}"
    parses_or_config_error(text, suffix)


# ---------------------------------------------------------------- round trip

CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # a script is text: no NUL
safe_text = st.text(CHARS, min_size=1, max_size=40)
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
finite = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
sources = st.one_of(st.sampled_from(["emilianJR/epiCRealism", "tiny", "lcm-lora-sd15", "./models/x.safetensors"]),
                    st.builds(dict, source=st.just("a/b"), revision=st.none() | names,
                              weight_name=st.none() | st.just("w.safetensors")))
prompts = st.one_of(safe_text, st.dictionaries(st.integers(0, 100), st.text(CHARS, max_size=20), min_size=1, max_size=4))
outputs = st.one_of(st.lists(st.sampled_from(OUTPUT_FORMATS), min_size=1, max_size=3, unique=True),
                    st.dictionaries(st.sampled_from(OUTPUT_FORMATS),
                                    st.none() | st.dictionaries(st.sampled_from(["target", "crf", "loop"]),
                                                                st.integers(0, 60) | names), min_size=1, max_size=3))


@st.composite
def clip_fields(draw, name=None):
    fields = {} if name is None else {"name": name}
    options = {
        "model": sources, "motion_adapter": sources, "scheduler": st.sampled_from(["lcm", "ddim", "euler-a"]),
        "steps": st.integers(1, 200), "guidance": finite(0, 30), "frames": st.integers(2, 1024),
        "fps": finite(0.01, 120), "width": st.integers(1, 512).map(lambda n: n * 8),
        "height": st.integers(1, 512).map(lambda n: n * 8),
        "seed": st.integers(0, 2**63 - 1) | st.lists(st.integers(0, 2**32), min_size=1, max_size=4, unique=True),
        "prompt": prompts, "negative": prompts, "head": st.text(CHARS, max_size=10), "tail": st.text(CHARS, max_size=10),
        "interpolation": st.sampled_from(["linear", "slerp"]), "outputs": outputs, "fuse": st.booleans(),
        "decode_chunk": st.integers(1, 1024),
        "adapters": st.lists(st.builds(dict, name=names, source=sources, weight=finite(-2, 3),
                                       kind=st.sampled_from(["lcm", "motion", "style"])),
                             max_size=3, unique_by=lambda a: a["name"]),
        "pose": st.builds(dict, source=st.just("poses/a.mp4"), scale=finite(0, 2), start=st.just(0.0),
                          end=finite(0.01, 1), fit=st.sampled_from(["contain", "cover", "stretch"])),
    }
    for key in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=8)):
        fields[key] = draw(options[key])
    return fields


@st.composite
def scripts(draw):
    clip_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    data = {"version": 1, "clips": [draw(clip_fields(n)) for n in clip_names]}
    if draw(st.booleans()):
        data["defaults"] = draw(clip_fields())
    return ScriptModel.model_validate(data)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_valid_script_round_trips_through_yaml(model):
    text = yaml.safe_dump(model.model_dump(exclude_none=True), sort_keys=False)
    assert parse_script(text).model == model


@settings(max_examples=50, deadline=2000)
@given(scripts())
def test_valid_script_round_trips_through_json(model):
    text = model.model_dump_json(exclude_none=True)
    assert parse_script(text, suffix=".json").model == model


def test_clip_model_is_frozen():
    clip = ClipModel(name="a", prompt="x")
    try:
        clip.name = "b"
    except Exception as exc:  # pydantic raises ValidationError for frozen instances
        assert "frozen" in str(exc)
    else:
        raise AssertionError("ClipModel is not frozen")
