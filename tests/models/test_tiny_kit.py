"""The tiny kit is complete, deterministic, and loads through the real loaders."""
from click.testing import CliRunner
from safetensors.torch import load_file

from animate.cli import main
from animate.models.tiny import PARTS, build_kit


def tensors(folder):
    return {str(p.relative_to(folder)): load_file(str(p)) for p in sorted(folder.rglob("*.safetensors"))}


def test_build_twice_is_identical(tmp_path, kit):
    build_kit(tmp_path / "a")
    # The SDXL parts (xl/) are built on first use, so the session's kit may hold them already: compared apart.
    first, second = tensors(tmp_path / "a"), {k: v for k, v in tensors(kit).items() if not k.startswith("xl/")}
    assert first.keys() == second.keys() and len(first) >= 8
    for name in first:
        assert first[name].keys() == second[name].keys()
        for key, value in first[name].items():
            assert value.equal(second[name][key]), (name, key)


def test_parts_and_tokenizer(kit):
    from transformers import CLIPTokenizer

    for rel in PARTS.values():
        assert (kit / rel).exists(), rel
    tok = CLIPTokenizer.from_pretrained(str(kit / "base" / "tokenizer"))
    ids = tok("a lighthouse", padding="max_length", max_length=tok.model_max_length).input_ids
    assert tok.model_max_length == 77 and len(ids) == 77 and ids[0] == tok.bos_token_id


def test_models_tiny_command_copies_kit(tmp_path, kit):
    result = CliRunner().invoke(main, ["models", "tiny", "--out", str(tmp_path / "kit")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kit" / "motion-module.safetensors").exists()
    assert (tmp_path / "kit" / "base" / "model_index.json").exists()
