"""A source's options (`sha256`, `revision`, `weight_name`, `config`, `allow_pickle`) may be written beside an
adapter's `source:` as people write them, and mean exactly what the nested `source: {source: ..., ...}` means."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from animate.cli import main
from animate.errors import ConfigError
from animate.spec import parse_script, resolve
from cli_helpers import assert_one_error_line

HEAD = "version: 1\ndefaults: {preset: tiny, frames: 2, width: 16, height: 16}\nclips:\n  - name: a\n    prompt: x\n"


def specs(text: str):
    return resolve(parse_script(text, where="s.yaml", path=Path("s.yaml")))


@pytest.mark.parametrize("option, value", [("revision", "v2"), ("weight_name", "lora.safetensors"),
                                           ("allow_pickle", True)])
def test_an_option_beside_source_equals_the_nested_form(kit, option, value):
    import yaml

    beside = HEAD + "    adapters:\n      - " + yaml.safe_dump(
        {"name": "zoom", "source": "owner/some-lora", option: value, "weight": 0.5}, default_flow_style=True)
    nested = HEAD + "    adapters:\n      - " + yaml.safe_dump(
        {"name": "zoom", "source": {"source": "owner/some-lora", option: value}, "weight": 0.5},
        default_flow_style=True)
    (a,), (b,) = specs(beside), specs(nested)
    assert a.to_dict() == b.to_dict()
    assert getattr(a.adapters[-1].source, option) == value


def test_a_sha256_beside_source_pins_the_file(kit, tmp_path):
    script = tmp_path / "pin.yaml"
    script.write_text(HEAD + "    adapters:\n      - {name: zoom, source: tiny-zoom-in, weight: 0.5, sha256: '"
                      + "0" * 64 + "'}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(out)])
    assert_one_error_line(result, out, "clip a", "(zoom)", "sha256 does not match the pin", "0" * 64)


def test_the_same_option_given_twice_with_two_values_is_refused():
    text = HEAD + "    adapters:\n      - {name: zoom, source: {source: a/b, revision: main}, revision: v2}\n"
    with pytest.raises(ConfigError) as info:
        specs(text)
    assert "s.yaml:7" in info.value.line() and "revision is given beside `source:` and inside it" in info.value.line()


def test_a_misspelt_option_beside_source_gets_a_hint():
    text = HEAD + "    adapters:\n      - {name: zoom, source: a/b, sha265: abc}\n"
    with pytest.raises(ConfigError, match=r"adapters\[0\]\.sha265: unknown field; did you mean `sha256`\?"):
        specs(text)


@pytest.mark.parametrize("field", ["pose: {source: '~nosuchuser/dance.mp4', controlnet: tiny}",
                                   "init_video: {source: '~nosuchuser/shot.mp4'}",
                                   "model: '~nosuchuser/base.safetensors'"])
def test_a_home_that_does_not_exist_is_a_missing_file_not_a_traceback(kit, tmp_path, field):
    script = tmp_path / "home.yaml"
    script.write_text(HEAD + f"    {field}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(out)])
    assert_one_error_line(result, out, "~nosuchuser", "no such file")
