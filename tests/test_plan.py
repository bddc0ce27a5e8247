"""Preflight (`animate check`): the plan, load counts, estimates and the silent-mistake warnings."""
import json

import yaml
from click.testing import CliRunner

from animate.cli import main


def check(tmp_path, clips, defaults=None, *extra):
    script = tmp_path / "plan.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": defaults or {"preset": "tiny"}, "clips": clips}))
    return CliRunner().invoke(main, ["check", str(script), *extra])


def test_plan_counts_loads_and_estimates(kit, tmp_path):
    clips = [{"name": "a", "prompt": "x", "seed": [1, 2]}, {"name": "b", "prompt": "y",
                                                          "adapters": [{"name": "zoom", "source": "tiny-zoom-in"}]}]
    result = check(tmp_path, clips)
    assert result.exit_code == 0, result.output
    assert "3 clip(s)" in result.output and "3 to render" in result.output and "1 model stack(s), 2 adapter load(s)" in result.output
    assert "a-s1" in result.output and "a-s2" in result.output and "~" in result.output
    result = check(tmp_path, clips, None, "--json")
    plan = json.loads(result.output.splitlines()[0])
    assert plan["event"] == "plan" and plan["loads"] == {"base_models": 1, "adapters": 2}
    assert all(c["estimate_s"] > 0 and c["estimate_gib"] > 0 for c in plan["clips"])


def warnings_of(tmp_path, clip, defaults=None):
    result = check(tmp_path, [{"name": "c", "prompt": "x", **clip}], defaults)
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines() if "warning:" in line]


def test_lcm_scheduler_without_lcm_lora(kit, tmp_path):
    warnings = warnings_of(tmp_path, {"adapters": [{"name": "lcm", "weight": 0}]})
    assert any("without an LCM-LoRA" in w for w in warnings)
    assert not warnings_of(tmp_path, {})  # the tiny preset has its LCM-LoRA: nothing to say


def test_guidance_far_from_distilled(kit, tmp_path):
    assert any("high for LCM" in w for w in warnings_of(tmp_path, {"guidance": 7.5}))


def test_lightning_step_count(tmp_path):
    warnings = warnings_of(tmp_path, {"steps": 6}, {"preset": "lightning", "model": "emilianJR/epiCRealism"})
    assert any("distilled for 4 steps" in w for w in warnings)


def test_frames_past_adapter_length(kit, tmp_path):
    assert any("context windows" in w for w in warnings_of(tmp_path, {"frames": 48}))


def test_lora_for_another_base(kit, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(kit / "lcm-lora" / "pytorch_lora_weights.safetensors"))
    save_file({k.replace("transformer_blocks.0", "transformer_blocks.3"): v for k, v in state.items()},
              str(tmp_path / "xl.safetensors"))
    result = check(tmp_path, [{"name": "c", "prompt": "x",
                               "adapters": [{"name": "style", "source": "xl.safetensors"}]}])
    assert result.exit_code == 2 and "adapters[1] (style)" in result.output and "SDXL LoRA" in result.output


def test_uncached_hub_id_offline_is_a_warning_in_check(tmp_path):
    warnings = warnings_of(tmp_path, {}, {"preset": "lcm", "model": "someone/uncached-model"})
    assert any("someone/uncached-model is not cached yet" in w and "offline" in w for w in warnings)


def test_preset_list_merges_render_and_output_presets(kit, tmp_path):
    result = check(tmp_path, [{"name": "c", "prompt": "x"}], {"preset": ["tiny", "editing"]})
    assert result.exit_code == 0, result.output
    assert "png, prores, ffv1" in result.output and "4 steps lcm" in result.output
