"""Each user mistake about models exits 2 with one clear line, no traceback, and writes nothing."""
import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from animate.cli import main
from cli_helpers import assert_one_error_line


def run_script(tmp_path, clip_fields, defaults):
    script = tmp_path / "bad.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": defaults, "clips": [{"name": "c1", **clip_fields}]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    return result, out


@pytest.fixture
def defaults(tiny_fields):
    return {**tiny_fields, "frames": 4, "outputs": ["png"]}


def test_missing_file(tmp_path, defaults):
    result, out = run_script(tmp_path, {"adapters": [{"name": "style", "source": "./nope.safetensors"}]}, defaults)
    assert_one_error_line(result, out, "bad.yaml:4:13: clips[0].adapters[0].source", "nope.safetensors", "no such file")


def test_missing_base_folder(tmp_path, defaults):
    result, out = run_script(tmp_path, {"model": "./models/missing-base/"}, defaults)
    assert_one_error_line(result, out, "model", "missing-base", "no such file")


def test_hub_id_offline(tmp_path, defaults):
    result, out = run_script(tmp_path, {"model": "someone-unknown/not-cached-model"}, defaults)
    assert_one_error_line(result, out, "clip c1", "model", "someone-unknown/not-cached-model", "offline",
                    "local folder")


def test_sdxl_lora_into_sd15(tmp_path, kit, defaults):
    state = load_file(str(kit / "lcm-lora" / "pytorch_lora_weights.safetensors"))
    # Same tensors under SDXL-only names (second text encoder, 10-deep transformer stacks).
    sdxl = {k.replace("transformer_blocks.0", "transformer_blocks.2"): v for k, v in state.items()}
    sdxl["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = next(iter(state.values())).clone()
    save_file(sdxl, str(tmp_path / "sdxl_lora.safetensors"))
    result, out = run_script(tmp_path, {"adapters": [{"name": "style", "source": "sdxl_lora.safetensors"}]}, defaults)
    assert_one_error_line(result, out, "adapters[0] (style)", "SDXL", "SD1.5")


def test_lora_with_wrong_shapes(tmp_path, kit, defaults):
    import torch

    state = load_file(str(kit / "lcm-lora" / "pytorch_lora_weights.safetensors"))
    wrong = {k: torch.zeros(v.shape[0], v.shape[1] * 2) if "lora_A" in k else v for k, v in state.items()}
    save_file(wrong, str(tmp_path / "wide_lora.safetensors"))
    result, out = run_script(tmp_path, {"adapters": [{"name": "style", "source": "wide_lora.safetensors"}]}, defaults)
    assert_one_error_line(result, out, "clip c1", "adapters[0] (style)", "does not fit this model")


def test_motion_lora_in_lcm_slot(tmp_path, defaults):
    result, out = run_script(tmp_path, {"adapters": [{"name": "lcm", "source": "tiny-zoom-in"}]}, defaults)
    assert_one_error_line(result, out, "adapters[0] (lcm)", "motion LoRA", "LCM slot")


def test_spatial_lora_as_motion(tmp_path, defaults):
    result, out = run_script(tmp_path, {"adapters": [{"name": "pan", "source": "tiny-lcm", "kind": "motion"}]},
                             defaults)
    assert_one_error_line(result, out, "adapters[0] (pan)", "not a motion LoRA")


def test_pickle_refused(tmp_path, defaults):
    (tmp_path / "old.ckpt").write_bytes(b"not really a pickle")
    result, out = run_script(tmp_path, {"adapters": [{"name": "style", "source": "old.ckpt"}]}, defaults)
    assert_one_error_line(result, out, "old.ckpt", "pickle", "allow_pickle")


def test_motion_adapter_that_does_not_fit(tmp_path, defaults):
    from diffusers import MotionAdapter

    MotionAdapter(block_out_channels=(16, 16), motion_layers_per_block=1, motion_norm_num_groups=2,
                  motion_num_attention_heads=2).save_pretrained(tmp_path / "wide-adapter")
    result, out = run_script(tmp_path, {"motion_adapter": "./wide-adapter"}, defaults)
    assert_one_error_line(result, out, "clip c1", "motion_adapter", "wide-adapter")
