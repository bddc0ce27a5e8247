"""Prompt travel: keyframes → per-frame conditioning, hand-checked blends, lerp/slerp properties."""
import math

import pytest
import torch

from motion.errors import MotionError
from motion.travel import (
    frame_blend_plan, interpolation_callback, lerp, normalize_keyframes, per_frame_embeddings, slerp,
)


def constant_keys(*values, tokens=3, channels=4):
    """Keyframe embeddings [K, T, C] whose every entry is one number: blends are easy to hand-check."""
    return torch.stack([torch.full((tokens, channels), float(v)) for v in values])


def test_normalize_sorts_converts_keys_and_applies_head_tail():
    got = normalize_keyframes({"12": "autumn", 0: "spring "}, 24, head="a forest", tail="  ")
    assert got == {0: "a forest, spring", 12: "a forest, autumn"}
    assert list(got) == [0, 12]
    assert normalize_keyframes({0: "x"}, 16, head="best", tail="4k") == {0: "best, x, 4k"}
    assert normalize_keyframes("castle", 16, tail="detailed") == {0: "castle, detailed"}
    assert normalize_keyframes({0: ""}, 16, head="h") == {0: "h"}


def test_missing_frame_zero_holds_the_first_keyframe_back():
    assert normalize_keyframes({6: "a", 30: "b"}, 48) == {0: "a", 6: "a", 30: "b"}


@pytest.mark.parametrize("frames, key", [(16, 16), (24, 30), (48, 48)])
def test_keyframe_past_the_last_frame_names_key_and_frame_count(frames, key):
    with pytest.raises(MotionError) as info:
        normalize_keyframes({0: "a", key: "b"}, frames)
    assert f"keyframe {key}" in str(info.value) and f"{frames} frames" in str(info.value)


@pytest.mark.parametrize("prompt", [{-1: "a"}, {"x": "a"}, {True: "a"}, {1.5: "a"}, {0: 3},
                                    {0: "a", "0": "b"}, {}])
def test_bad_keyframes_are_motion_errors(prompt):
    with pytest.raises(MotionError):
        normalize_keyframes(prompt, 16)


def test_plan_16_frames_two_keys():
    plan = frame_blend_plan([0, 8], 16)
    assert len(plan) == 16
    assert plan[0] == (0, 1, 0.0)
    assert plan[4] == (0, 1, 0.5)
    assert plan[6] == (0, 1, 0.75)
    assert plan[8:] == [(1, 1, 0.0)] * 8  # held after the last key


def test_plan_24_frames_three_keys():
    plan = frame_blend_plan([0, 12, 18], 24)
    assert plan[3] == (0, 1, 0.25)
    assert plan[12] == (1, 2, 0.0)
    assert plan[15] == (1, 2, 0.5)
    assert plan[17] == (1, 2, 5 / 6)
    assert plan[23] == (2, 2, 0.0)


def test_plan_48_frames_first_key_late():
    plan = frame_blend_plan([6, 30, 42], 48)
    assert plan[:6] == [(0, 0, 0.0)] * 6  # held back to frame 0
    assert plan[18] == (0, 1, 0.5)
    assert plan[36] == (1, 2, 0.5)
    assert plan[47] == (2, 2, 0.0)


@pytest.mark.parametrize("keys, frames", [([], 16), ([0, 16], 16), ([4, 4], 16), ([8, 2], 16), ([-1], 4)])
def test_plan_rejects_bad_keys(keys, frames):
    with pytest.raises(MotionError):
        frame_blend_plan(keys, frames)


def test_per_frame_embeddings_16_frames_by_hand():
    keys = normalize_keyframes({0: "spring", 8: "autumn"}, 16)
    out = per_frame_embeddings(constant_keys(0, 4), frame_blend_plan(list(keys), 16))
    assert out.shape == (16, 3, 4)
    expected = [0.5 * f for f in range(8)] + [4.0] * 8
    assert torch.equal(out[:, 0, 0], torch.tensor(expected))
    assert torch.equal(out[4], torch.full((3, 4), 2.0))


def test_per_frame_embeddings_24_frames_by_hand():
    keys = normalize_keyframes({0: "a", 12: "b", 18: "c"}, 24)
    out = per_frame_embeddings(constant_keys(0, 12, -6), frame_blend_plan(list(keys), 24))
    by_frame = out[:, 1, 2].tolist()
    assert by_frame[0] == 0 and by_frame[3] == 3 and by_frame[12] == 12
    assert by_frame[15] == pytest.approx(3.0) and by_frame[17] == pytest.approx(-3.0)
    assert by_frame[18:] == [-6.0] * 6


def test_per_frame_embeddings_48_frames_by_hand():
    keys = normalize_keyframes({6: "a", 30: "b", 42: "c"}, 48)
    assert list(keys) == [0, 6, 30, 42]
    embeds = constant_keys(1, 1, 25, 1)  # frame 0 was filled with keyframe 6's text → same embedding
    out = per_frame_embeddings(embeds, frame_blend_plan(list(keys), 48))[:, 0, 0].tolist()
    assert out[:7] == [1.0] * 7
    assert out[18] == pytest.approx(13.0) and out[30] == 25.0
    assert out[36] == pytest.approx(13.0) and out[47] == 1.0
    # Each frame differs from its neighbour while travelling: travel is not silently a no-op.
    assert len(set(out[6:31])) == 25


def test_slerp_mode_frames_follow_the_arc():
    e1, e2 = torch.eye(2)
    embeds = torch.stack([e1.expand(3, 2), e2.expand(3, 2)])
    out = per_frame_embeddings(embeds, frame_blend_plan([0, 8], 16), mode="slerp")
    angle = math.pi / 2 * 4 / 8
    assert torch.allclose(out[4, 0], torch.tensor([math.cos(angle), math.sin(angle)]), atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(16, 3), atol=1e-6)


def test_unknown_mode_and_bad_shapes():
    with pytest.raises(MotionError, match="linear, slerp"):
        per_frame_embeddings(constant_keys(0, 1), [(0, 1, 0.5)], mode="cubic")
    with pytest.raises(MotionError):
        per_frame_embeddings(torch.zeros(2, 3), [(0, 1, 0.5)])
    with pytest.raises(MotionError):
        per_frame_embeddings(constant_keys(0, 1), [(0, 2, 0.5)])
    with pytest.raises(MotionError):
        interpolation_callback("nope")


def test_slerp_preserves_norm_of_unit_vectors():
    gen = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(77, 768, generator=gen), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(77, 768, generator=gen), dim=-1)
    for t in (0.1, 0.25, 0.5, 0.9):
        assert torch.allclose(slerp(a, b, t).norm(dim=-1), torch.ones(77), atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert torch.allclose((mid * a).sum(-1), (mid * b).sum(-1), atol=1e-5)  # halfway along the arc


def test_slerp_equals_lerp_for_parallel_and_degenerate_vectors():
    a = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    for b in (2 * a, -a, torch.zeros_like(a)):
        for t in (0.3, 0.5):
            got = slerp(a, b, t)
            assert torch.isfinite(got).all()
            assert torch.allclose(got, lerp(a, b, t), atol=1e-6)


def test_endpoints_are_exact_and_dtype_kept():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 16, generator=gen), torch.randn(4, 16, generator=gen)
    for fn in (lerp, slerp):
        assert torch.equal(fn(a, b, 0), a) and torch.equal(fn(a, b, 1.0), b)
    assert slerp(a.half(), b.half(), 0.5).dtype == torch.float16


def test_callback_shape_and_endpoints():
    gen = torch.Generator().manual_seed(3)
    start, end = torch.randn(1, 77, 8, generator=gen), torch.randn(1, 77, 8, generator=gen)
    for mode in ("linear", "slerp"):
        out = interpolation_callback(mode)(4, 12, start, end)
        assert out.shape == (9, 77, 8)
        assert torch.equal(out[0], start[0]) and torch.equal(out[-1], end[0])
    assert interpolation_callback("slerp").mode == "slerp"
