"""`--lora SOURCE[:WEIGHT]`: a weight that is not a number is named as such; colons inside sources stay."""
import pytest
from click.testing import CliRunner

from animate.cli import main
from animate.commands.common import parse_lora
from animate.errors import ConfigError


def test_a_weight_that_is_not_a_number(kit, tmp_path):
    result = CliRunner().invoke(main, ["render", "--prompt", "x", "--preset", "tiny", "--lora", "tiny-zoom-in:abc",
                                       "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: --lora tiny-zoom-in:abc: weight 'abc' is not a number; "
                                     "use SOURCE:WEIGHT like tiny-zoom-in:0.8")


def test_the_lcm_flag_names_itself():
    with pytest.raises(ConfigError, match=r"^--lcm tiny-lcm:x: weight 'x' is not a number"):
        parse_lora("tiny-lcm:x", 0, flag="--lcm")


@pytest.mark.parametrize("value, source, weight", [
    ("tiny-zoom-in:0.8", "tiny-zoom-in", 0.8),
    ("tiny-zoom-in", "tiny-zoom-in", 1.0),
    ("C:\\loras\\film.safetensors", "C:\\loras\\film.safetensors", 1.0),
    ("C:\\loras\\film.safetensors:0.3", "C:\\loras\\film.safetensors", 0.3),
    ("C:/loras/film.safetensors", "C:/loras/film.safetensors", 1.0),
    ("D:film.safetensors", "D:film.safetensors", 1.0),
    ("https://example.com/film.safetensors", "https://example.com/film.safetensors", 1.0),
    ("https://example.com:8443/film.safetensors:0.5", "https://example.com:8443/film.safetensors", 0.5),
    ("guoyww/animatediff-motion-lora-zoom-in:-0.5", "guoyww/animatediff-motion-lora-zoom-in", -0.5),
])
def test_sources_with_colons(value, source, weight):
    entry = parse_lora(value, 1)
    assert (entry["source"], entry["weight"]) == (source, weight)


def test_hub_ids_with_revisions():
    entry = parse_lora("owner/film-grain@3c1d9f0:0.6", 1)
    assert entry == {"name": "film-grain", "weight": 0.6,
                     "source": {"source": "owner/film-grain", "revision": "3c1d9f0"}}
    assert parse_lora("owner/name@main", 1)["source"] == {"source": "owner/name", "revision": "main"}


def test_a_file_whose_name_holds_a_colon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "take:2.safetensors").write_bytes(b"")
    assert parse_lora("take:2.safetensors", 1)["source"] == "take:2.safetensors"


def test_a_pinned_hub_lora_reaches_the_plan(kit, tmp_path):
    result = CliRunner().invoke(main, ["render", "--prompt", "x", "--preset", "tiny", "--lora", "owner/film@v2:0.5",
                                       "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "film:0.5" in result.output and "adapter film owner/film@v2 is not cached yet" in result.output
