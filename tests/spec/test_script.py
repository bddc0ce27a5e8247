"""Script validation: the bad-input corpus through the real CLI, good scripts, messages, resolution errors."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from animate.cli import main
from animate.errors import ConfigError
from animate.spec import ScriptModel, load_script, parse_script, resolve, spec_from_fields

HERE = Path(__file__).parents[1] / "scripts"
BAD = HERE / "bad"
GOOD = HERE / "good"
SUFFIXES = (".yaml", ".json", ".toml")

# Every broken script and exactly the lines (after "error: ") the CLI must print for it.
# {f} is the script path as given on the command line, {dir} the resolved corpus folder.
EXPECTED = {
    'adapter-weight.toml': [
        '{f}:17:10: clips[1].adapters[0].weight: must be between -2 and 3 (got 7)',
    ],
    'binary-junk.yaml': [
        '{f}: script is binary, not text; give a YAML, JSON or TOML file',
    ],
    'comments-only.yaml': [
        '{f}: script is empty; start from an example in presets/examples/',
    ],
    'deep-nesting.yaml': [
        '{f}:1:39: nested deeper than 32 levels',
    ],
    'duplicate-clip-names.yaml': [
        "{f}:9:11: clips[2].name: clip name 'a' is already used by clips[0]; clip names become file names and must be unique",
    ],
    'duplicate-key.yaml': [
        '{f}:8:5: clips[0].steps: duplicate key `steps` (first at line 7); keep one',
    ],
    'empty.yaml': [
        '{f}: script is empty; start from an example in presets/examples/',
    ],
    'huge-float.yaml': [
        '{f}:7:15: clips[0].guidance: must be between 0 and 30 (got inf)',
    ],
    'huge-int.yaml': [
        '{f}:7:11: clips[0].seed: must be between 0 and 9223372036854775807 (got 100000000000000000000000000000000000000000000000000000000...)',
    ],
    'json-huge-int.json': [
        '{f}:1:63: clips[0].seed: must be between 0 and 9223372036854775807 (got 100000000000000000000000000000000000000000000000000000000...)',
    ],
    'json-syntax.json': [
        '{f}:1:54: invalid JSON: expecting property name enclosed in double quotes',
    ],
    'keyframe-not-number.yaml': [
        "{f}:6:33: clips[0].prompt.soon: keyframe keys must be frame numbers (got 'soon')",
    ],
    'keyframe-past-end.yaml': [
        '{f}:7:27: clips[0].prompt[24]: keyframe 24 is past the last frame (15); use keys below 16 or raise `frames`',
    ],
    'missing-model-file.yaml': [
        "{f}:7:12: clips[0].model: ./models/missing.safetensors: no such file or folder; check the path (relative paths resolve against the script's folder)",
    ],
    'missing-model.yaml': [
        '{f}:3:5: clips[0].model: required field is missing; set it in the clip or under defaults (a hub id like owner/name, a folder, a .safetensors file, or `tiny` for the offline kit)',
    ],
    'missing-name.yaml': [
        '{f}:5:5: clips[0].name: required field is missing',
    ],
    'missing-prompt.yaml': [
        '{f}:5:5: clips[0].prompt: required field is missing; every clip needs a prompt (text, or keyframes like {0: "...", 12: "..."})',
    ],
    'negative-size.yaml': [
        '{f}:7:12: clips[0].width: must be between 8 and 4096 (got -64)',
    ],
    'no-clips.yaml': [
        '{f}:2:8: clips: must list at least 1 clip (got 0)',
    ],
    'not-utf8.yaml': [
        '{f}: script is not UTF-8 text (byte 32 on line 3); save it as UTF-8 YAML, JSON or TOML',
    ],
    'pickle-model.yaml': [
        '{f}:7:12: clips[0].model: {dir}/pickle.ckpt is a pickle checkpoint, which can run code when loaded; convert it to .safetensors, or set allow_pickle: true if you trust it',
    ],
    'seed-stem-clash.yaml': [
        "{f}:8:11: clips[1].name: 'a-s1' writes the same files (a-s1.*) as clips[0] 'a' at seed 1; rename one of them",
    ],
    'several-problems.json': [
        '{f}:5:43: clips[0].steps: must be between 1 and 200 (got 0)',
        '{f}:6:41: clips[1].fps: must be more than 0 and at most 120 (got 0)',
        '{f}:6:44: clips[1].widht: unknown field; did you mean `width`?',
    ],
    'size-not-by-8.yaml': [
        '{f}:7:13: clips[0].height: must be divisible by 8 (got 500); try 496',
    ],
    'toml-syntax.toml': [
        "{f}:4:12: invalid TOML: illegal character '\\n'",
    ],
    'toml-unknown-key.toml': [
        '{f}:7:1: clips[0].guidence: unknown field; did you mean `guidance`?',
    ],
    'top-level-list.yaml': [
        '{f}:1:1: the top level must be a mapping with `clips:` (got a list); start from an example in presets/examples/',
    ],
    'unknown-key-adapter.yaml': [
        '{f}:8:39: clips[0].adapters[0].wieght: unknown field; did you mean `weight`?',
    ],
    'unknown-key-clip.yaml': [
        '{f}:7:5: clips[0].guidence: unknown field; did you mean `guidance`?',
    ],
    'unknown-key-defaults-synonym.yaml': [
        '{f}:4:3: defaults.cfg: unknown field; did you mean `guidance`?',
    ],
    'unknown-key-pose.yaml': [
        '{f}:7:33: clips[0].pose.scael: unknown field; did you mean `scale`?',
    ],
    'unknown-key-top.yaml': [
        '{f}:1:1: clips: required field is missing; list the clips to render under `clips:`',
        '{f}:2:1: clip: unknown field; did you mean `clips`?',
    ],
    'unknown-output.yaml': [
        "{f}:7:20: clips[0].outputs[1]: unknown output format 'mp5'; did you mean `mp4`?",
    ],
    'unknown-preset.yaml': [
        "{f}:7:13: clips[0].preset: unknown preset 'lcn'; did you mean `lcm`?",
    ],
    'unknown-scheduler.yaml': [
        "{f}:7:16: clips[0].scheduler: unknown scheduler 'eulr'; did you mean `euler`?",
    ],
    'unsafe-name-absolute.yaml': [
        "{f}:5:11: clips[0].name: a clip name becomes a file name, so it cannot hold '/', '\\' or '..' (got '/etc/x'); try `x`",
    ],
    'unsafe-name-dotdot.yaml': [
        "{f}:5:11: clips[0].name: a clip name becomes a file name, so it cannot hold '/', '\\' or '..' (got '../x'); try `x`",
    ],
    'unsafe-name-space.yaml': [
        "{f}:5:11: clips[0].name: use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (got 'A B'); try `a-b`",
    ],
    'weight-out-of-range.yaml': [
        '{f}:8:47: clips[0].adapters[0].weight: must be between -2 and 3 (got 7)',
    ],
    'wrong-type-steps.yaml': [
        "{f}:7:12: clips[0].steps: must be a whole number (got 'many')",
    ],
    'wrong-version.yaml': [
        '{f}:1:10: version: must be 1 (got 2)',
    ],
    'yaml-bomb.yaml': [
        '{f}:1:4: YAML anchors and aliases are not allowed in scripts; write the value out, or put shared settings under `defaults:`',
    ],
    'yaml-syntax.yaml': [
        '{f}:5:1: invalid YAML: found unexpected end of stream while scanning a quoted scalar (which starts at line 4, column 13)',
    ],
}


def _expected(path: Path) -> list[str]:
    return [line.replace("{f}", str(path)).replace("{dir}", str(BAD.resolve())) for line in EXPECTED[path.name]]


def _corpus():
    return sorted(p for p in BAD.iterdir() if p.suffix in SUFFIXES)


def test_corpus_is_complete():
    names = {p.name for p in _corpus()}
    assert names == set(EXPECTED)
    assert len(names) >= 25
    assert {p.suffix for p in _corpus()} == set(SUFFIXES)


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_bad_script_render_exits_2_and_writes_nothing(path, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.splitlines() == ["error: " + line for line in _expected(path)]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_bad_script_check_exits_2(path):
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == ["error: " + line for line in _expected(path)]


@pytest.mark.parametrize("path", sorted(p for p in GOOD.iterdir() if p.suffix in SUFFIXES), ids=lambda p: p.name)
def test_good_script_check_prints_plan(path):
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "to render" in result.output and "estimated total" in result.output


def test_schema_is_json_schema():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["type"] == "object" and "clips" in schema["properties"] and "clips" in schema["required"]
    assert schema["additionalProperties"] is False
    text = json.dumps(schema)
    assert '"maximum": 3' in text and '"minimum": -2' in text  # adapter weight bounds reach editors


# ---------------------------------------------------------------- messages

def errors(text: str, suffix: str = ".yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_script(text, where="s" + suffix, suffix=suffix)
    return info.value.lines or [info.value.line()]


HUB = "version: 1\ndefaults:\n  model: emilianJR/epiCRealism\nclips:\n"


def test_every_problem_at_once_in_file_order():
    lines = errors(HUB + "  - name: a\n    prompt: x\n    steps: 0\n    widht: 64\n"
                         "  - name: B\n    prompt: y\n    adapters:\n      - {name: z, source: zoom-in, weight: 7}\n")
    assert lines == [
        "s.yaml:7:12: clips[0].steps: must be between 1 and 200 (got 0)",
        "s.yaml:8:5: clips[0].widht: unknown field; did you mean `width`?",
        "s.yaml:9:11: clips[1].name: use lower-case letters, digits, '.', '_' and '-', starting with a letter or "
        "digit (got 'B'); try `b`",
        "s.yaml:12:44: clips[1].adapters[0].weight: must be between -2 and 3 (got 7)",
    ]


def test_union_values_get_one_message():
    assert errors(HUB + "  - name: a\n    prompt: x\n    seed: [1, -3]\n") == [
        "s.yaml:7:15: clips[0].seed[1]: must be between 0 and 9223372036854775807 (got -3)"]
    assert errors(HUB + "  - name: a\n    prompt: x\n    seed: lucky\n") == [
        "s.yaml:7:11: clips[0].seed: must be a whole number or a list (got 'lucky')"]
    assert errors(HUB + "  - name: a\n    prompt: x\n    model: {source: 5}\n") == [
        "s.yaml:7:21: clips[0].model.source: must be a string (got 5)"]
    assert errors(HUB + "  - name: a\n    prompt: {0: x, 4: 5}\n") == [
        "s.yaml:6:23: clips[0].prompt[4]: must be a string (got 5)"]


def test_did_you_mean_at_every_level():
    assert errors("verison: 1\nclips: [{name: a, prompt: x}]\n") == [
        "s.yaml:1:1: verison: unknown field; did you mean `version`?"]
    assert errors(HUB + "  - name: a\n    prompt: x\n    model: {source: a/b, revison: main}\n") == [
        "s.yaml:7:26: clips[0].model.revison: unknown field; did you mean `revision`?"]
    assert errors(HUB + "  - name: a\n    prompt: x\n    negative_prompt: ugly\n") == [
        "s.yaml:7:5: clips[0].negative_prompt: unknown field; did you mean `negative`?"]
    assert errors(HUB + "  - name: a\n    prompt: x\n    adapters: [{name: z, zzz: 1}]\n") == [
        "s.yaml:7:26: clips[0].adapters[0].zzz: unknown field; fields here: name, source, weight, kind, revision, weight_name, config, "
        "allow_pickle, sha256"]


def test_json_and_toml_positions():
    text = '{"version": 1,\n "clips": [\n  {"name": "a", "prompt": "x", "frames": 0}\n ]\n}\n'
    assert errors(text, ".json") == ["s.json:3:42: clips[0].frames: must be between 2 and 1024 (got 0)"]
    assert errors('{"clips": [{"name": "a", "name": "b"}]}', ".json") == [
        "s.json:1:26: clips[0].name: duplicate key `name` (first at line 1); keep one"]
    toml = 'version = 1\n[[clips]]\nname = "a"\nprompt = "x"\n[clips.pose]\nsource = "p.mp4"\nscale = 9\n'
    assert errors(toml, ".toml") == ["s.toml:7:9: clips[0].pose.scale: must be between 0 and 2 (got 9)"]
    toml = toml.replace("scale = 9", "complexity = 3")
    assert errors(toml, ".toml") == ["s.toml:7:14: clips[0].pose.complexity: must be 0, 1 or 2 (got 3)"]


def test_pose_options_reach_the_pose_source(monkeypatch, tmp_path):
    import animate.rendering.pose
    from animate.rendering.pose import load_pose_frames

    seen = {}

    def pose_frames(source, **kw):
        seen.update(kw, source=source)
        return []

    monkeypatch.setattr(animate.rendering.pose, "pose_frames", pose_frames)  # where the pose variant looks it up
    (tmp_path / "dance.mp4").write_bytes(b"")  # checked to exist; never read here
    spec = spec_from_fields(dict(preset="tiny", prompt="x", pose={
        "source": "dance.mp4", "complexity": 2, "smooth": False, "threshold": 0.5}), base_dir=tmp_path)[0]
    load_pose_frames(spec)
    assert (seen["complexity"], seen["smooth"], seen["threshold"]) == (2, False, 0.5)
    assert "source_fps" not in seen  # options left out are the source's defaults


def test_names_that_would_escape_or_clash():
    for name in ("../x", "/etc/x", "a\\\\b", "x.part", "-x", "A", "a" * 65, "~x"):
        assert "clips[0].name:" in errors(HUB + f'  - name: "{name}"\n    prompt: x\n')[0], name


def test_resolve_reports_every_clip_with_positions():
    text = (HUB + "  - name: a\n    frames: 8\n    prompt: {0: x, 8: y}\n    negative: {9: z}\n"
                  "  - name: b\n    preset: lcn\n"
                  "  - name: c\n    prompt: x\n    model: ./nowhere/model.safetensors\n")
    with pytest.raises(ConfigError) as info:
        resolve(parse_script(text, where="s.yaml"))
    assert info.value.lines == [
        "s.yaml:7:20: clips[0].prompt[8]: keyframe 8 is past the last frame (7); use keys below 8 or raise `frames`",
        "s.yaml:8:16: clips[0].negative[9]: keyframe 9 is past the last frame (7); use keys below 8 or raise `frames`",
        "s.yaml:10:13: clips[1].preset: unknown preset 'lcn'; did you mean `lcm`?",
        "s.yaml:13:12: clips[2].model: ./nowhere/model.safetensors: no such file or folder; check the path "
        "(relative paths resolve against the script's folder)",
    ]


def test_problem_in_defaults_is_reported_once():
    text = "version: 1\ndefaults:\n  model: ./gone\nclips:\n  - {name: a, prompt: x}\n  - {name: b, prompt: y}\n"
    with pytest.raises(ConfigError) as info:
        resolve(parse_script(text, where="s.yaml"))
    assert info.value.lines == ["s.yaml:3:10: defaults.model: ./gone: no such file or folder; check the path "
                                "(relative paths resolve against the script's folder)"]


def test_adapters_merge_by_name_and_missing_source_points_at_the_entry():
    text = (HUB.replace("clips:", "  adapters: [{name: zoom, source: zoom-in, weight: 0.5}]\nclips:")
            + "  - name: a\n    prompt: x\n    adapters: [{name: zoom, weight: 0.9}, {name: pan}]\n")
    with pytest.raises(ConfigError) as info:
        resolve(parse_script(text, where="s.yaml"))
    assert info.value.lines == ["s.yaml:8:43: clips[0].adapters[1].source: required field is missing (adapter "
                                "'pan' has no source here, in defaults or in the preset)"]
    spec, = resolve(parse_script(text.replace(", {name: pan}", ""), where="s.yaml"))
    assert [(a.name, a.weight) for a in spec.adapters] == [("zoom", 0.9)]


def test_command_line_values_are_checked():
    with pytest.raises(ConfigError) as info:
        spec_from_fields({"prompt": "x", "model": "emilianJR/epiCRealism", "width": 500, "steps": 0})
    assert info.value.lines == ["command line: steps: must be between 1 and 200 (got 0)",
                                "command line: width: must be divisible by 8 (got 500); try 496"]
    with pytest.raises(ConfigError) as info:
        spec_from_fields({"prompt": "x"})
    assert info.value.lines[0].startswith("command line: model: required field is missing")
    result = CliRunner().invoke(main, ["render", str(GOOD / "travel.yaml"), "--dry-run", "--width", "500"])
    assert result.exit_code == 2
    assert result.output == "error: command line: width: must be divisible by 8 (got 500); try 496\n"


def test_load_script_round_trips_good_files():
    for path in GOOD.iterdir():
        script = load_script(path)
        assert isinstance(script.model, ScriptModel)
        assert resolve(script)
