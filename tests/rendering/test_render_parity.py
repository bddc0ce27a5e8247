"""The renderer equals diffusers' own AnimateDiffPipeline given the same components and inputs."""
import numpy as np
import pytest
import torch

from animate.spec import spec_from_fields

MOTION_LORAS = [{"name": "lcm", "source": "tiny-lcm", "weight": 1.0},
                {"name": "zoom", "source": "tiny-zoom-in", "weight": 0.8},
                {"name": "pan", "source": "tiny-pan-left", "weight": 0.35}]


def reference_frames(kit, fields, loras, scheduler_cls="LCMScheduler"):
    """What a diffusers user would write by hand."""
    import diffusers
    from diffusers import AnimateDiffPipeline, MotionAdapter

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    pipe = AnimateDiffPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter)
    pipe.scheduler = getattr(diffusers, scheduler_cls).from_config(pipe.scheduler.config)
    files = {"tiny-lcm": ("lcm-lora", "pytorch_lora_weights.safetensors"),
             "tiny-zoom-in": ("motion-lora-zoom-in", "diffusion_pytorch_model.safetensors"),
             "tiny-pan-left": ("motion-lora-pan-left", "diffusion_pytorch_model.safetensors")}
    for lora in loras:
        folder, weight_name = files[lora["source"]]
        pipe.load_lora_weights(str(kit / folder), weight_name=weight_name, adapter_name=lora["name"])
    if loras:
        pipe.set_adapters([l["name"] for l in loras], [l["weight"] for l in loras])
    out = pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=fields["frames"],
               height=fields["height"], width=fields["width"], num_inference_steps=fields["steps"],
               guidance_scale=fields["guidance"], generator=torch.Generator("cpu").manual_seed(fields["seed"]),
               output_type="np").frames[0]
    return out


@pytest.mark.parametrize("guidance", [1.0, 1.8])
def test_cli_png_frames_equal_diffusers(kit, tmp_path, tiny_fields, guidance):
    """`animate render SCRIPT` PNG frames == diffusers' frames (≤ 1/255), with and without CFG."""
    import yaml
    from click.testing import CliRunner
    from PIL import Image

    from animate.cli import main

    fields = {**tiny_fields, "guidance": guidance}
    script = tmp_path / "parity.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {**fields, "adapters": MOTION_LORAS,
                                                                  "outputs": ["png"]},
                                      "clips": [{"name": "fox"}]}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "out"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "parity" / "fox"
    ours = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))])
    ref = reference_frames(kit, fields, MOTION_LORAS)
    assert ours.shape == (fields["frames"], fields["height"], fields["width"], 3)
    diff = np.abs(ours.astype(int) - (ref * 255).round().astype(int)).max()
    assert diff <= 1, diff
    assert ours.std() > 5  # real content, not a flat frame


def render_float(renderer, fields, adapters, **kw):
    spec = spec_from_fields({**fields, "adapters": adapters, **kw})[0]
    result = renderer.render(spec, keep_float=True)
    return result.float_frames


def test_zero_weight_equals_absent(renderer, tiny_fields):
    base = [MOTION_LORAS[0], MOTION_LORAS[1]]
    without = render_float(renderer, tiny_fields, base, fuse=False)
    with_zero = render_float(renderer, tiny_fields, base + [{**MOTION_LORAS[2], "weight": 0.0}], fuse=False)
    assert np.abs(without - with_zero).max() <= 1e-5


def test_weight_changes_frames(renderer, tiny_fields):
    a = render_float(renderer, tiny_fields, [{**MOTION_LORAS[1], "weight": 0.2}], fuse=False)
    b = render_float(renderer, tiny_fields, [{**MOTION_LORAS[1], "weight": 1.5}], fuse=False)
    assert np.abs(a - b).max() > 1e-3


def test_fused_equals_unfused(renderer, tiny_fields):
    unfused = render_float(renderer, tiny_fields, MOTION_LORAS, fuse=False)
    fused = render_float(renderer, tiny_fields, MOTION_LORAS, fuse=True)
    # Fuse, then change weights (unfuse + refuse), then come back: still the same frames.
    render_float(renderer, tiny_fields, [{**l, "weight": 0.5} for l in MOTION_LORAS], fuse=True)
    fused_again = render_float(renderer, tiny_fields, MOTION_LORAS, fuse=True)
    assert np.abs(unfused - fused).max() <= 1e-4
    assert np.abs(unfused - fused_again).max() <= 1e-4


def test_single_file_motion_module_equals_folder(renderer, tiny_fields):
    folder = render_float(renderer, tiny_fields, [MOTION_LORAS[0]])
    single = render_float(renderer, {**tiny_fields, "motion_adapter": "tiny-motion-file"}, [MOTION_LORAS[0]])
    assert np.abs(folder - single).max() <= 1e-6


def test_lightning_state_dict_loads_and_differs(renderer, tiny_fields):
    folder = render_float(renderer, tiny_fields, [])
    lightning = render_float(renderer, {**tiny_fields, "motion_adapter": "tiny-lightning", "scheduler": "lightning"},
                             [])
    assert lightning.shape == folder.shape
    assert np.abs(folder - lightning).max() > 1e-4


def test_single_file_base_equals_folder(renderer, tiny_fields):
    folder = render_float(renderer, tiny_fields, [MOTION_LORAS[0]])
    single = render_float(renderer, {**tiny_fields, "model": "tiny-file"}, [MOTION_LORAS[0]])
    assert np.abs(folder - single).max() <= 1e-6


def test_weight_ramp_over_steps(renderer, tiny_fields):
    fields = {**tiny_fields, "steps": 3}
    lcm = MOTION_LORAS[0]
    constant = render_float(renderer, fields, [lcm, {**MOTION_LORAS[1], "weight": 0.6}], fuse=False)
    flat_ramp = render_float(renderer, fields, [lcm, {**MOTION_LORAS[1], "weight": {"start": 0.6, "end": 0.6}}])
    assert np.abs(constant - flat_ramp).max() <= 1e-5
    ramp = render_float(renderer, fields, [lcm, {**MOTION_LORAS[1], "weight": {"start": 1.5, "end": 0.0}}])
    high = render_float(renderer, fields, [lcm, {**MOTION_LORAS[1], "weight": 1.5}], fuse=False)
    low = render_float(renderer, fields, [lcm, {**MOTION_LORAS[1], "weight": 0.0}], fuse=False)
    assert np.abs(ramp - high).max() > 1e-4 and np.abs(ramp - low).max() > 1e-4


def test_weight_ramp_sets_each_step(renderer, tiny_fields, monkeypatch):
    from motion.loras import LoraMixer

    seen = []
    original = LoraMixer.set_weights
    monkeypatch.setattr(LoraMixer, "set_weights", lambda self, n, w: (seen.append(list(w)), original(self, n, w)))
    render_float(renderer, {**tiny_fields, "steps": 3},
                 [{**MOTION_LORAS[1], "weight": {"start": 1.0, "end": 0.0}}])
    assert seen == [[0.5], [0.0]]  # step 0 runs at 1.0 (set before the loop), then 0.5, then 0.0
