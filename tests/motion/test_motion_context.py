"""Context windows and FreeInit as script options: the windows diffusers will use, `check` and the sidecar
showing them, the repeat_context noise diffusers means to draw, and parity with diffusers' own
`enable_free_noise` / `enable_free_init` calls given the same inputs."""
import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from animate.spec import spec_from_fields
from motion.context import context_plan, windows
from motion.errors import MotionError

FIELDS = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=3, guidance=1.5, width=32, height=32,
              seed=5, prompt="a red fox in snow", negative="blurry")


def test_windows_match_diffusers_free_noise_blocks():
    from diffusers.models.attention import FreeNoiseTransformerBlock

    block = FreeNoiseTransformerBlock(dim=8, num_attention_heads=2, attention_head_dim=4)
    for frames, length, stride in [(16, 16, 12), (25, 16, 4), (48, 16, 12), (20, 8, 6), (1024, 16, 12)]:
        block.set_free_noise_properties(length, stride, "pyramid")
        expected = block._get_frame_indices(frames)
        if expected[-1][1] != frames:  # diffusers appends an end-aligned window inside forward()
            expected.append((frames - length, frames))
        assert windows(frames, length, stride) == expected


def test_defaults_come_from_the_adapter_length():
    one = context_plan(24, 32)
    assert (one.length, one.windows) == (24, ((0, 24),))  # fits the adapter: one window, the plain result
    long = context_plan(48, 32)
    assert (long.length, long.overlap, long.stride) == (16, 4, 12)  # peers' 16 with a quarter overlap
    assert long.windows == ((0, 16), (12, 28), (24, 40), (32, 48))
    assert context_plan(48, 12).length == 12  # an adapter shorter than 16 frames
    assert context_plan(8, 32, length=16).length == 8  # never longer than the clip (diffusers would fail)
    with pytest.raises(MotionError, match="overlap 16 must be .* less than the window length 16"):
        context_plan(48, 32, overlap=16)


def test_check_prints_the_windows_and_free_init_cost(kit, tmp_path):
    from animate.cli import main

    script = tmp_path / "w.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {**FIELDS, "outputs": ["png"]}, "clips": [
        {"name": "long", "frames": 48, "loop": True},
        {"name": "fine", "frames": 20, "context": {"length": 8, "overlap": 2, "weighting": "flat"},
         "free_init": {"iters": 3}}]}))
    result = CliRunner().invoke(main, ["check", str(script)])
    assert result.exit_code == 0, result.output
    assert "context: 4 windows of 16 (overlap 4, pyramid, shuffle_context): 0-15, 12-27, 24-39, 32-47; loops" \
        in result.output
    assert "context: 3 windows of 8 (overlap 2, flat, shuffle_context): 0-7, 6-13, 12-19" in result.output
    assert "free_init: 3 iterations (butterworth) → 9 denoising steps, ×3 the cost" in result.output
    plan = CliRunner().invoke(main, ["check", str(script), "--json"])
    clips = [json.loads(line) for line in plan.output.splitlines() if line.startswith("{")][0]["clips"]
    assert clips[1]["context"]["windows"] == [[0, 8], [6, 14], [12, 20]]
    # The estimate counts FreeInit's iterations: three times the same clip without it.
    from animate.run.plan import estimate

    with_fi = spec_from_fields({**FIELDS, "frames": 20, "free_init": {"iters": 3}})[0]
    without = spec_from_fields({**FIELDS, "frames": 20})[0]
    assert estimate(with_fi, "cpu", "fp32")[0] == pytest.approx(3 * estimate(without, "cpu", "fp32")[0])
    fast = spec_from_fields({**FIELDS, "steps": 6, "frames": 20, "free_init": {"iters": 3, "fast": True}})[0]
    from animate.rendering.steps import denoising_steps

    assert denoising_steps(fast) == 2 + 4 + 6


def test_sidecar_records_windows_and_loop_closure(kit, tmp_path):
    from animate.cli import main

    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {**FIELDS, "steps": 2, "outputs": ["png"]},
                                      "clips": [{"name": "long", "frames": 40, "context": {"overlap": 8}}]}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "out"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "out" / "s" / "long.json").read_text())
    info = sidecar["info"]
    assert info["context"]["windows"] == [[0, 16], [8, 24], [16, 32], [24, 40]]
    assert info["context"]["stride"] == 8 and sidecar["spec"]["context"]["overlap"] == 8
    assert 0 < info["loop_closure"] < 10


def reference(kit, fields, free_noise=None, free_init=None):
    """What a diffusers user would write by hand."""
    from diffusers import AnimateDiffPipeline, LCMScheduler, MotionAdapter

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    pipe = AnimateDiffPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if free_noise:
        pipe.enable_free_noise(**free_noise)
    if free_init:
        pipe.enable_free_init(**free_init)
    return pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=fields["frames"],
                height=fields["height"], width=fields["width"], num_inference_steps=fields["steps"],
                guidance_scale=fields["guidance"], generator=torch.Generator("cpu").manual_seed(fields["seed"]),
                output_type="np").frames[0]


def pixels(frames):
    return (np.clip(frames, 0, 1) * 255).round().astype(int)


@pytest.mark.parametrize("context", [
    {"length": 8, "overlap": 2, "weighting": "flat", "noise": "random"},
    {"length": 8, "overlap": 5, "weighting": "delayed_reverse_sawtooth", "noise": "shuffle_context"},
])
def test_custom_context_equals_diffusers_free_noise(kit, renderer, context):
    fields = {**FIELDS, "frames": 20, "context": context}
    result = renderer.render(spec_from_fields(fields)[0], keep_float=True)
    ref = reference(kit, fields, free_noise=dict(
        context_length=context["length"], context_stride=context["length"] - context["overlap"],
        weighting_scheme=context["weighting"], noise_type=context["noise"]))
    assert np.abs(pixels(result.float_frames) - pixels(ref)).max() <= 1
    assert result.info["context"]["stride"] == context["length"] - context["overlap"]


@pytest.mark.parametrize("free_init", [{"iters": 2, "method": "gaussian", "fast": False},
                                       {"iters": 3, "method": "butterworth", "fast": True}])
def test_free_init_equals_diffusers_enable_free_init(kit, renderer, free_init):
    fields = {**FIELDS, "frames": 8, "free_init": free_init}
    result = renderer.render(spec_from_fields(fields)[0], keep_float=True)
    ref = reference(kit, fields, free_init=dict(num_iters=free_init["iters"], method=free_init["method"],
                                                use_fast_sampling=free_init["fast"]))
    assert np.abs(pixels(result.float_frames) - pixels(ref)).max() <= 1
    plain = renderer.render(spec_from_fields({**FIELDS, "frames": 8})[0], keep_float=True).float_frames
    assert np.abs(plain - result.float_frames).max() > 1e-3  # FreeInit did something


def test_free_init_is_off_again_for_the_next_clip(renderer):
    a = renderer.render(spec_from_fields({**FIELDS, "frames": 8})[0], keep_float=True).float_frames
    renderer.render(spec_from_fields({**FIELDS, "frames": 8, "free_init": {"iters": 2}})[0])
    b = renderer.render(spec_from_fields({**FIELDS, "frames": 8})[0], keep_float=True)
    assert np.array_equal(a, b.float_frames) and "free_init" not in b.info


def first_unet_input(renderer, spec):
    """The noisy latents the UNet sees at the first step."""
    seen = []
    unet = renderer.stack_for(spec).pipe.unet
    handle = unet.register_forward_pre_hook(lambda m, args, kw: seen.append(kw.get("sample", args[0] if args
                                                                                 else None)), with_kwargs=True)
    try:
        renderer.render(spec)
    finally:
        handle.remove()
    return seen[0]


def test_repeat_context_repeats_the_first_window_of_noise(renderer):
    spec = spec_from_fields({**FIELDS, "guidance": 1.0, "frames": 20, "context": {"length": 8,
                                                                                 "noise": "repeat_context"}})[0]
    latents = first_unet_input(renderer, spec)
    assert torch.equal(latents[:, :, 0:8], latents[:, :, 8:16]) and torch.equal(latents[:, :, 0:4],
                                                                                latents[:, :, 16:20])
    # diffusers alone draws fresh noise for every frame (its branch compares the context length, not the noise
    # type, with "repeat_context"), which is what `random` gives:
    random = first_unet_input(renderer, spec_from_fields({**FIELDS, "guidance": 1.0, "frames": 20, "context": {
        "length": 8, "noise": "random"}})[0])
    assert not torch.equal(random[:, :, 0:8], random[:, :, 8:16])
    from diffusers import AnimateDiffPipeline

    pipe = renderer.stack_for(spec).pipe
    assert isinstance(pipe, AnimateDiffPipeline)
    pipe.enable_free_noise(context_length=8, context_stride=6, noise_type="repeat_context")
    theirs = pipe.prepare_latents(1, 4, 20, 32, 32, torch.float32, torch.device("cpu"),
                                  torch.Generator("cpu").manual_seed(5))
    assert not torch.equal(theirs[:, :, 0:8], theirs[:, :, 8:16])  # the bug this works around
    assert torch.equal(theirs, random)  # ... so it equals `random` noise


def test_context_is_in_the_render_key():
    from animate.run.jobs import render_key

    keys = {render_key(spec_from_fields({**FIELDS, "frames": 40, **extra})[0], "fp32") for extra in [
        {}, {"context": {"length": 16}}, {"context": {"overlap": 8}}, {"context": {"weighting": "flat"}},
        {"context": {"noise": "random"}}, {"loop": True}, {"free_init": {"iters": 2}},
        {"free_init": {"iters": 2, "fast": True}}]}
    assert len(keys) == 8


def test_context_settings_that_clash_only_once_merged_are_one_located_line(tmp_path):
    """Each layer is valid alone (a length in defaults, an overlap in the clip); merged they are not."""
    from animate.errors import ConfigError
    from animate.spec import load_script, resolve

    script = tmp_path / "ctx.yaml"
    script.write_text("version: 1\ndefaults: {model: tiny, prompt: a lighthouse, frames: 2, context: {length: 2}}\n"
                      "clips:\n  - {name: a, context: {overlap: 2}}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(load_script(script))
    assert str(caught.value).startswith(f"{script}:4:") and "clips[0].context: overlap (2) must be less than " \
        "length (2)" in str(caught.value)
