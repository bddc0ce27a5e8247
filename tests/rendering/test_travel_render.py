"""Prompt travel reaches the UNet: each frame's conditioning is the expected blend of its keyframes."""
import pytest
import torch

from animate.spec import spec_from_fields
from motion.travel import frame_blend_plan, lerp, slerp


def captured_conditioning(renderer, spec):
    """The encoder_hidden_states of the first UNet call (one window covers the whole clip)."""
    stack = renderer.stack_for(spec)
    seen = []

    def hook(module, args, kwargs):
        if not seen:
            seen.append(kwargs["encoder_hidden_states"].detach().clone())

    handle = stack.pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        renderer.render(spec)
    finally:
        handle.remove()
    return seen[0], stack.pipe


@pytest.mark.parametrize("frames,keys,mode", [
    (8, {0: "a red fox", 4: "a blue whale"}, "linear"),
    (24, {0: "spring forest", 10: "autumn forest", 20: "winter forest"}, "slerp"),
])
def test_each_frame_is_the_expected_blend(kit, renderer, frames, keys, mode):
    spec = spec_from_fields(dict(preset="tiny", frames=frames, width=32, height=32, steps=1, prompt=keys,
                                 head="masterpiece", tail="4k", interpolation=mode, seed=1))[0]
    cond, pipe = captured_conditioning(renderer, spec)
    assert cond.shape[0] == frames  # guidance 1.0: one conditional row per frame
    texts = [f"masterpiece, {keys[k]}, 4k" for k in sorted(keys)]
    key_embeds = torch.cat([pipe.encode_prompt(t, "cpu", 1, False)[0] for t in texts])
    mix = {"linear": lerp, "slerp": slerp}[mode]
    for frame, (i, j, t) in enumerate(frame_blend_plan(sorted(keys), frames)):
        expected = mix(key_embeds[i], key_embeds[j], t)
        assert torch.allclose(cond[frame], expected, atol=1e-5), frame
    # Keyframes themselves are exact, and the middle of a span is a real blend of both.
    first, second = sorted(keys)[:2]
    assert torch.allclose(cond[first], key_embeds[0], atol=1e-6)
    mid = (first + second) // 2
    assert (cond[mid] - key_embeds[0]).abs().max() > 1e-4 and (cond[mid] - key_embeds[1]).abs().max() > 1e-4


def test_long_clip_uses_context_windows(kit, renderer):
    spec = spec_from_fields(dict(preset="tiny", frames=40, width=16, height=16, steps=1,
                                 prompt={0: "day", 39: "night"}, seed=2))[0]
    result = renderer.render(spec)
    assert result.frames.shape == (40, 16, 16, 3)
