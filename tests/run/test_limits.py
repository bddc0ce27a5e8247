"""Resource limits and file-name rules: amounts, flags, located refusals, and the name rule's promise that a
name it accepts is a file inside the output folder on every system."""
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from animate.errors import ConfigError
from animate.run.limits import Limits, amount, check_limits, parse_amount
from animate.outputs.layout import OutputLayout, safe_name
from animate.util.names import reserved_name
from animate.spec import load_script, name_problem, resolve


@pytest.mark.parametrize("text,value", [("2G", 2_000_000_000), ("200MB", 200_000_000), ("1.5k", 1500),
                                        ("1000", 1000), ("none", None), ("OFF", None), ("32 M", 32_000_000)])
def test_amounts(text, value):
    assert parse_amount(text, "--limit x") == value


@pytest.mark.parametrize("text", ["lots", "0", "-5", "1e9", "2Q"])
def test_bad_amounts_are_one_line(text):
    with pytest.raises(ConfigError) as exc:
        parse_amount(text, f"--limit pixels={text}")
    assert exc.value.line().startswith(f"--limit pixels={text}: ") and "\n" not in exc.value.line()


def test_flags_set_limits_by_name():
    limits = Limits.parse(["pixels=1G", "total_pixels=none", "json=200MB"])
    assert (limits.pixels, limits.total_pixels, limits.json, limits.clips) == (10**9, None, 200 * 10**6, 1000)
    with pytest.raises(ConfigError, match="did you mean `prompt`"):
        Limits.parse(["promt=5"])


def test_amounts_read_back():
    assert [amount(n) for n in (999, 12_300_000, 2 * 10**9)] == ["999", "12.3 M", "2 G"]
    assert amount(2_000_000, "B") == "2 MB"


def script(tmp_path, **defaults):
    path = tmp_path / "lim.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", **defaults}, "clips": [
        {"name": "small", "prompt": "x"}, {"name": "wide", "prompt": "y", "width": 512}]}, sort_keys=False))
    return load_script(path)


def test_refusal_points_at_the_layer_that_set_the_value(tmp_path):
    loaded = script(tmp_path, frames=64)
    with pytest.raises(ConfigError) as exc:
        check_limits(resolve(loaded), Limits(pixels=64 * 64 * 64), loaded)
    lines = exc.value.line().splitlines()
    assert len(lines) == 1  # `small` (64x64) fits; `wide` (512x64) does not
    line = lines[0]
    assert line.startswith(f"{loaded.path}:") and ": clips[1].width: 64 frames of 512x64 are 2.1 M pixels" in line
    assert line.endswith("--limit pixels=2.1M")
    row = int(line.split(":")[1])
    assert "width: 512" in loaded.path.read_text().splitlines()[row - 1]


def test_every_problem_at_once_and_without_a_script(tmp_path):
    loaded = script(tmp_path, frames=64)
    specs = resolve(loaded)
    with pytest.raises(ConfigError) as exc:
        check_limits(specs, Limits(pixels=1000, clips=1, prompt=None))
    lines = exc.value.line().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{loaded.path}: clip small: frames: ")
    assert lines[-1].startswith("clips: 2 renders")
    check_limits(specs, Limits(pixels=None, clips=None))  # lifted: nothing to say


def test_run_specs_takes_the_limits(tmp_path):
    from animate.run.runner import run_specs

    loaded = script(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="more than the limit of 1"):
        run_specs(resolve(loaded), out=out, script_stem="lim", limits=Limits(clips=1))
    assert not out.exists()


@pytest.mark.parametrize("name", ["con", "CON", "nul.gif", "com1", "lpt9.tar.gz", "aux", "prn", "castle."])
def test_windows_reserved_names(name):
    assert reserved_name(name)
    assert name_problem(name) is not None
    with pytest.raises(ConfigError):
        safe_name(name)


def test_adapter_names_are_not_file_names():
    assert name_problem("con", "adapter") is None and name_problem("con") is not None


@pytest.mark.parametrize("name", ["console", "nullify", "com10", "castle.gif", "a.b"])
def test_names_that_only_look_reserved(name):
    assert reserved_name(name) is None and name_problem(name) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=70), st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)))
def test_an_accepted_name_is_a_plain_file_inside_the_root(tmp_path_factory, text):
    if name_problem(text) is not None:
        return
    root = tmp_path_factory.getbasetemp() / "names"
    layout = OutputLayout(root, "script")
    path = layout.file(safe_name(text), "gif")
    assert path.parent == layout.resolved_root and path.name == f"{text}.gif"
    assert text.isascii() and text == text.strip() and reserved_name(text) is None
