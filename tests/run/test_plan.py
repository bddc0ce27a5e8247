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


def test_memory_estimate_follows_the_models_own_size_wherever_it_lives(kit, tmp_path):
    """A copy of the tiny kit (another path, so nothing can recognise it by name) is estimated from its files'
    headers like the original, near what the process really holds (~1 GiB RSS here: 0.9 GiB of it the libraries),
    not as an SD1.5 model (5.2 GiB)."""
    import shutil

    from animate.run.plan import estimate, parameters
    from animate.spec import spec_from_fields

    copy = tmp_path / "kit"
    shutil.copytree(kit / "base", copy / "base")
    shutil.copytree(kit / "motion-adapter", copy / "motion-adapter")
    fields = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=4, guidance=1.0, frames=8, width=64,
                  height=64, prompt="x")
    (own,) = spec_from_fields(fields)
    (moved,) = spec_from_fields({**fields, "model": str(copy / "base"), "motion_adapter": str(copy / "motion-adapter")})
    assert estimate(moved, "cpu", "fp32") == estimate(own, "cpu", "fp32")
    seconds, gib = estimate(moved, "cpu", "fp32")
    assert 0.9 <= gib < 1.5 and seconds < 5
    assert estimate(moved, "cuda", "fp16")[1] < 1.0  # no process runtime on the device, half-size weights
    # The weights' part is what the headers hold: the stack's numbers times 4 bytes in fp32.
    count = parameters(own.model) + parameters(own.motion_adapter)
    assert count < 5e6


def test_memory_estimate_of_an_unreadable_base_keeps_the_sd15_figures(tmp_path):
    from animate.run.plan import WEIGHTS_GIB, estimate
    from animate.spec import spec_from_fields

    (spec,) = spec_from_fields(dict(model="emilianJR/epiCRealism", motion_adapter="guoyww/animatediff-motion-adapter-v1-5-2",
                                    scheduler="ddim", steps=4, guidance=7.5, frames=16, width=512, height=512, prompt="x"))
    _, gib = estimate(spec, "cuda", "fp16")
    assert WEIGHTS_GIB["fp16"] + 3.0 < gib < WEIGHTS_GIB["fp16"] + 4.5  # weights + 2 x 1.6 GiB activations + context
