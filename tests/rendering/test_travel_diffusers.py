"""Prompt travel agrees with diffusers' FreeNoise prompt interpolation (same call, same numbers)."""
import zlib

import pytest
import torch

free_noise = pytest.importorskip("diffusers.pipelines.free_noise_utils")

from motion.travel import (  # noqa: E402
    frame_blend_plan, interpolation_callback, normalize_keyframes, per_frame_embeddings,
)

TOKENS, CHANNELS = 77, 16


def embed(text: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(zlib.crc32(text.encode()))
    return torch.randn(TOKENS, CHANNELS, generator=gen)


class FakeTextPipeline(free_noise.AnimateDiffFreeNoiseMixin):
    """Just enough pipeline for diffusers' own `_encode_prompt_free_noise` to run on fake embeddings."""

    def __init__(self, callback):
        self._free_noise_prompt_interpolation_callback = callback

    def encode_prompt(self, prompt, device, num_images_per_prompt, do_classifier_free_guidance,
                      negative_prompt=None, **_):
        positive = torch.stack([embed(p) for p in prompt])
        negative = torch.stack([embed(p) for p in negative_prompt]) if do_classifier_free_guidance else None
        return positive, negative


def diffusers_embeddings(prompt: dict, frames: int, callback) -> torch.Tensor:
    embeds, _ = FakeTextPipeline(callback)._encode_prompt_free_noise(
        prompt, frames, torch.device("cpu"), 1, do_classifier_free_guidance=False)
    return embeds


def test_linear_callback_matches_diffusers_lerp_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    start, end = torch.randn(1, TOKENS, CHANNELS, generator=gen), torch.randn(1, TOKENS, CHANNELS, generator=gen)
    reference = free_noise.AnimateDiffFreeNoiseMixin._lerp(None, 3, 14, start, end)
    ours = interpolation_callback("linear")(3, 14, start, end)
    assert ours.shape == reference.shape == (12, TOKENS, CHANNELS)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("frames, prompt", [
    (16, {0: "spring", 8: "autumn"}),
    (24, {0: "a", 12: "b", 18: "c"}),
    (48, {0: "dawn", 10: "noon", 30: "dusk", 47: "night"}),
])
def test_our_plan_equals_diffusers_free_noise_encoding(frames, prompt):
    theirs = diffusers_embeddings(prompt, frames, interpolation_callback("linear"))
    default = diffusers_embeddings(prompt, frames, FakeTextPipeline(None)._lerp)
    assert torch.equal(theirs, default)  # our callback is a drop-in for diffusers' default

    keys = normalize_keyframes(prompt, frames)
    ours = per_frame_embeddings(torch.stack([embed(t) for t in keys.values()]),
                                frame_blend_plan(list(keys), frames))
    assert ours.shape == theirs.shape == (frames, TOKENS, CHANNELS)
    # Identical while travelling; diffusers re-blends a held prompt with itself (last-bit rounding).
    last_key = max(keys)
    assert torch.equal(ours[:last_key + 1], theirs[:last_key + 1])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_slerp_callback_runs_inside_diffusers():
    out = diffusers_embeddings({0: "spring", 8: "autumn"}, 16, interpolation_callback("slerp"))
    assert out.shape == (16, TOKENS, CHANNELS) and torch.isfinite(out).all()
    assert torch.equal(out[0], embed("spring")) and torch.allclose(out[8:], embed("autumn").expand(8, -1, -1))
