"""Piecewise-linear schedules over denoising progress: adapter weights (motion LoRAs included) and the pose
scale follow them step by step; a constant schedule renders what the static weight renders; static weights stay
fused."""
import numpy as np
import pytest
import yaml

from animate.errors import ConfigError
from animate.spec import parse_script, resolve, spec_from_fields
from motion.loras import schedule_value, weight_at, weight_label
from tests.rendering.test_render_pose import skeleton_frames

SCHEDULE = {0.0: 1.0, 0.5: 0.6, 1.0: 0.3}


def test_schedule_value_is_piecewise_linear_and_holds_its_ends():
    assert schedule_value(SCHEDULE, 0.0) == 1.0 and schedule_value(SCHEDULE, 1.0) == 0.3
    assert schedule_value(SCHEDULE, 0.25) == pytest.approx(0.8)
    assert schedule_value(SCHEDULE, 0.75) == pytest.approx(0.45)
    assert schedule_value({0.2: 0.5, 0.8: 1.0}, 0.0) == 0.5 and schedule_value({0.2: 0.5, 0.8: 1.0}, 1.0) == 1.0
    assert [weight_at(SCHEDULE, i, 5) for i in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.45, 0.3])
    assert weight_at(SCHEDULE, 0, 1) == 1.0  # one step: progress 0
    assert weight_label(SCHEDULE) == "1@0→0.6@0.5→0.3@1"
    assert weight_label({"0.0": 1.0, "1.0": 0.5}) == "1@0→0.5@1"  # a sidecar's text keys


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "version: 1\nclips:\n  - {name: a, model: tiny, prompt: x, adapters: [{name: z, source: tiny-zoom-in,"
              " weight: {0.0: 1.0, 0.5: 0.6, 1.0: 0.3}}], pose: {source: p, scale: {0: 1.0, 1: 0.5}}}\n"),
    (".json", '{"version": 1, "clips": [{"name": "a", "model": "tiny", "prompt": "x", "adapters": [{"name": "z", '
              '"source": "tiny-zoom-in", "weight": {"1.0": 0.3, "0.0": 1.0, "0.5": 0.6}}], '
              '"pose": {"source": "p", "scale": {"0": 1.0, "1": 0.5}}}]}'),
    (".toml", 'version = 1\n[[clips]]\nname = "a"\nmodel = "tiny"\nprompt = "x"\n'
              'pose = {source = "p", scale = {"0" = 1.0, "1" = 0.5}}\n'
              '[[clips.adapters]]\nname = "z"\nsource = "tiny-zoom-in"\nweight = {"0.0" = 1.0, "0.5" = 0.6, "1" = 0.3}\n'),
])
def test_numeric_schedule_keys_in_yaml_json_and_toml(tmp_path, kit, suffix, text):
    (tmp_path / "p").mkdir()
    path = tmp_path / f"s{suffix}"
    (spec,) = resolve(parse_script(text, where=str(path), suffix=suffix, path=path))
    assert spec.adapters[-1].weight == SCHEDULE and list(spec.adapters[-1].weight) == [0.0, 0.5, 1.0]  # sorted
    assert spec.pose.scale == {0.0: 1.0, 1.0: 0.5}


@pytest.mark.parametrize("weight, expected", [
    ("{1.5: 1.0}", "clips[0].adapters[0].weight.1.5: must be between 0 and 1 (got 1.5)"),
    ("{0: 9}", "clips[0].adapters[0].weight[0]: must be between -2 and 3 (got 9)"),
    ("{}", "clips[0].adapters[0].weight: must list at least 1 item (got 0)"),
    ("{start: 1}", "clips[0].adapters[0].weight.end: required field is missing"),
    ("{soon: 1}", "clips[0].adapters[0].weight.soon: schedule keys must be denoising progress from 0.0 to 1.0 "
                  "(got 'soon')"),
])
def test_bad_schedule_is_one_line_naming_the_point(weight, expected):
    text = f"version: 1\nclips:\n  - {{name: a, model: tiny, prompt: x, adapters: [{{name: z, source: tiny-zoom-in, " \
           f"weight: {weight}}}]}}\n"
    with pytest.raises(ConfigError) as info:
        parse_script(text, where="s.yaml")
    assert len(info.value.lines) == 1 and expected in info.value.lines[0], info.value.lines


def active_weights(renderer, spec, **kw):
    """Render `spec` and record, at every UNet call, the weight each LoRA layer really applies (PEFT's
    scaling ÷ alpha/r), by adapter name as the clip names it."""
    from peft.tuners.lora import LoraLayer

    renderer.render(spec, keep_float=True)  # load the adapters; the recording run follows
    stack = renderer.stack_for(spec)
    internal = {stack.adapters[a.source.key()]: a.name for a in spec.adapters}
    layers = {}
    for module in stack.pipe.unet.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.scaling:
                if adapter in internal:
                    layers.setdefault(internal[adapter], (module, adapter))
    seen = []

    def record(module, args):
        seen.append({name: m.scaling[a] * m.r[a] / m.lora_alpha[a] for name, (m, a) in layers.items()})

    handle = stack.pipe.unet.register_forward_pre_hook(record)
    try:
        result = renderer.render(spec, keep_float=True, **kw)
    finally:
        handle.remove()
    return seen, result


def test_adapter_weights_follow_their_schedules_step_by_step(renderer, tiny_fields):
    adapters = [{"name": "lcm", "source": "tiny-lcm", "weight": {0.0: 0.2, 1.0: 1.0}},
                {"name": "zoom", "source": "tiny-zoom-in", "weight": SCHEDULE},  # a motion LoRA
                {"name": "pan", "source": "tiny-pan-left", "weight": {"start": 0.5, "end": 0.0}}]
    spec = spec_from_fields({**tiny_fields, "steps": 5, "adapters": adapters})[0]
    seen, _ = active_weights(renderer, spec)
    assert len(seen) == spec.steps  # guidance 1.0: one UNet call per step
    for step, weights in enumerate(seen):
        for a in spec.adapters:
            assert weights[a.name] == pytest.approx(weight_at(a.weight, step, spec.steps), abs=1e-6), (step, a.name)
    assert [round(w["zoom"], 4) for w in seen] == [1.0, 0.8, 0.6, 0.45, 0.3]


def test_schedules_restart_with_each_free_init_iteration(renderer, tiny_fields):
    spec = spec_from_fields({**tiny_fields, "steps": 3, "free_init": {"iters": 2},
                             "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": SCHEDULE}]})[0]
    seen, result = active_weights(renderer, spec)
    assert [round(w["zoom"], 4) for w in seen] == [1.0, 0.6, 0.3] * 2
    assert result.info["free_init"]["denoising_steps"] == 6


def test_constant_schedule_equals_the_static_weight(renderer, tiny_fields):
    fields = {**tiny_fields, "steps": 3}
    static = spec_from_fields({**fields, "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": 0.7}]})[0]
    flat = spec_from_fields({**fields, "adapters": [{"name": "zoom", "source": "tiny-zoom-in",
                                                      "weight": {0.0: 0.7, 0.5: 0.7, 1.0: 0.7}}]})[0]
    a = renderer.render(static, keep_float=True).float_frames
    assert renderer.stack_for(static).mixer.fused is not None  # the static weight took the fused fast path
    b = renderer.render(flat, keep_float=True).float_frames
    assert renderer.stack_for(flat).mixer.fused is None  # a schedule cannot be fused
    assert np.abs(a - b).max() <= 1e-4
    moving = spec_from_fields({**fields, "adapters": [{"name": "zoom", "source": "tiny-zoom-in",
                                                        "weight": {0.0: 0.7, 1.0: 1.5}}]})[0]
    assert np.abs(renderer.render(moving, keep_float=True).float_frames - a).max() > 1e-4


def pose_spec(tiny_fields, tmp_path, scale):
    return spec_from_fields({**tiny_fields, "frames": 4, "steps": 4, "guidance": 1.5,
                             "pose": {"source": str(tmp_path), "controlnet": "tiny", "scale": scale}})[0]


def test_pose_scale_follows_its_schedule(renderer, tiny_fields, tmp_path):
    spec = pose_spec(tiny_fields, tmp_path, {0.0: 1.2, 1.0: 0.3})
    cond = skeleton_frames(spec.frames, spec.width)
    renderer.render(spec, pose_frames=cond)  # loads the ControlNet
    controlnet = renderer.stack_for(spec).controlnets[spec.pose.controlnet.key()]
    scales = []
    # A forward hook sees the inputs forward() ran with, after the renderer's pre-hook applied the schedule.
    handle = controlnet.register_forward_hook(lambda m, a, kw, out: scales.append(kw["conditioning_scale"]),
                                              with_kwargs=True)
    try:
        renderer.render(spec, pose_frames=cond)
    finally:
        handle.remove()
    assert scales == pytest.approx([1.2, 0.9, 0.6, 0.3])


def test_constant_pose_scale_schedule_equals_the_static_scale(renderer, tiny_fields, tmp_path):
    static = pose_spec(tiny_fields, tmp_path, 0.8)
    cond = skeleton_frames(static.frames, static.width)
    a = renderer.render(static, pose_frames=cond, keep_float=True).float_frames
    b = renderer.render(pose_spec(tiny_fields, tmp_path, {0.0: 0.8, 1.0: 0.8}), pose_frames=cond,
                        keep_float=True).float_frames
    assert np.abs(a - b).max() <= 1e-4
    c = renderer.render(pose_spec(tiny_fields, tmp_path, {0.0: 0.8, 1.0: 0.0}), pose_frames=cond,
                        keep_float=True).float_frames
    assert np.abs(a - c).max() > 1e-4


def test_schedules_are_in_the_render_key(kit, tmp_path):
    from animate.run.jobs import render_key

    def key(weight):
        text = yaml.safe_dump({"version": 1, "clips": [{"name": "a", "model": "tiny", "prompt": "x", "adapters": [
            {"name": "z", "source": "tiny-zoom-in", "weight": weight}]}]})
        return render_key(resolve(parse_script(text, where="s.yaml"))[0], "fp32")

    assert len({key(0.5), key({0.0: 0.5, 1.0: 0.5}), key({0.0: 0.5, 1.0: 0.6}), key({"start": 0.5, "end": 0.6})}) == 4
