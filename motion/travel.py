"""Prompt travel: prompt keyframes → one text conditioning per frame.

A clip's prompt is `{frame: text}`. Frames between two keyframes blend the two encoded prompts (linearly,
or by slerp per token vector); frames after the last keyframe hold it. If frame 0 has no keyframe, the
first keyframe also holds back to frame 0 (diffusers' FreeNoise refuses such prompts; we fill frame 0 in).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from motion.errors import MotionError

MODES = ("linear", "slerp")
# Above this cosine two token vectors are treated as parallel: slerp's sin(omega) would divide by ~0.
PARALLEL_DOT = 0.9995


def _frame_key(key: object) -> int:
    if isinstance(key, bool):
        raise MotionError(f"prompt keyframe {key!r} is not a frame number; use an integer like 0 or 12")
    if isinstance(key, int):
        value = key
    elif isinstance(key, str) and key.strip().isdigit():
        value = int(key.strip())
    else:
        raise MotionError(f"prompt keyframe {key!r} is not a frame number; use an integer like 0 or 12")
    if value < 0:
        raise MotionError(f"prompt keyframe {value} is negative; frames count from 0")
    return value


def _join(*parts: str) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


def normalize_keyframes(prompt: Mapping[int | str, str] | str, frames: int, head: str = "",
                        tail: str = "") -> dict[int, str]:
    """Sorted `{frame: head, text, tail}` with int keys, starting at frame 0.

    Raises MotionError for keys that are not frame numbers, duplicates ("4" and 4), non-text prompts,
    and keys at or past `frames`. A missing frame 0 takes the first keyframe's text.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise MotionError(f"frames must be a positive integer, got {frames!r}")
    if isinstance(prompt, str):
        prompt = {0: prompt}
    if not isinstance(prompt, Mapping) or not prompt:
        raise MotionError("prompt must be text or a non-empty mapping of frame → text")
    keyed: dict[int, str] = {}
    for raw_key, text in prompt.items():
        key = _frame_key(raw_key)
        if key in keyed:
            raise MotionError(f"prompt keyframe {key} is given twice; keep one")
        if not isinstance(text, str):
            raise MotionError(f"prompt keyframe {key} must be text, got {type(text).__name__}")
        if key >= frames:
            raise MotionError(f"prompt keyframe {key} is past the last frame: the clip has {frames} frames "
                              f"(0-{frames - 1}); lower the keyframe or raise frames")
        keyed[key] = _join(head, text, tail)
    ordered = dict(sorted(keyed.items()))
    if 0 not in ordered:
        ordered = {0: next(iter(ordered.values())), **ordered}
    return ordered


def frame_blend_plan(keys: list[int], frames: int) -> list[tuple[int, int, float]]:
    """Per frame: (index of keyframe A, index of keyframe B, t) with the frame = (1 - t)·A + t·B.

    Frames before the first key hold it, frames from the last key on hold the last one.
    """
    keys = list(keys)
    if not keys:
        raise MotionError("prompt travel needs at least one keyframe")
    if any(b <= a for a, b in zip(keys, keys[1:])):
        raise MotionError(f"keyframes must be strictly increasing, got {keys}")
    if keys[0] < 0 or keys[-1] >= frames:
        raise MotionError(f"keyframes {keys} must lie in frames 0-{frames - 1}")
    plan: list[tuple[int, int, float]] = []
    last = len(keys) - 1
    segment = 0
    for frame in range(frames):
        if frame < keys[0]:
            plan.append((0, 0, 0.0))
        elif frame >= keys[-1]:
            plan.append((last, last, 0.0))
        else:
            while keys[segment + 1] <= frame:
                segment += 1
            start, end = keys[segment], keys[segment + 1]
            plan.append((segment, segment + 1, (frame - start) / (end - start)))
    return plan


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t)·a + t·b, written as diffusers' FreeNoise `_lerp` writes it so the numbers match bit for bit."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of each vector along the last axis; lerp where a and b are nearly parallel.

    Computed in float32 (acos in half precision is too coarse) and returned in a's dtype.
    """
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a32, b32 = a.float(), b.float()
    norms = a32.norm(dim=-1, keepdim=True) * b32.norm(dim=-1, keepdim=True)
    dot = (a32 * b32).sum(dim=-1, keepdim=True) / norms.clamp_min(1e-12)
    parallel = (dot.abs() > PARALLEL_DOT) | (norms < 1e-12)
    omega = torch.acos(dot.clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    safe_sin = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    spherical = (torch.sin((1 - t) * omega) * a32 + torch.sin(t * omega) * b32) / safe_sin
    linear = (1 - t) * a32 + t * b32
    return torch.where(parallel, linear, spherical).to(a.dtype)


def _mixer(mode: str) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    if mode == "linear":
        return lerp
    if mode == "slerp":
        return slerp
    raise MotionError(f"prompt interpolation {mode!r} is unknown; use one of {', '.join(MODES)}")


def per_frame_embeddings(key_embeds: torch.Tensor, plan: list[tuple[int, int, float]],
                         mode: str = "linear") -> torch.Tensor:
    """Blend encoded keyframes [K, T, C] into per-frame conditioning [F, T, C] following `plan`."""
    mix = _mixer(mode)
    if key_embeds.ndim != 3:
        raise MotionError(f"keyframe embeddings must be [keys, tokens, channels], got {tuple(key_embeds.shape)}")
    count = key_embeds.shape[0]
    if any(not (0 <= i < count and 0 <= j < count) for i, j, _ in plan):
        raise MotionError(f"blend plan refers to keyframes beyond the {count} encoded ones")
    frames = [key_embeds[i].clone() if i == j else mix(key_embeds[i], key_embeds[j], t) for i, j, t in plan]
    return torch.stack(frames)


def interpolation_callback(mode: str = "linear") -> Callable[[int, int, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A `prompt_interpolation_callback` for diffusers' `pipe.enable_free_noise(...)`.

    diffusers calls it as `callback(start_index, end_index, start_tensor, end_tensor)` with tensors of
    shape [1, T, C] (its type hint also names the pipeline, but the stored attribute is called without it)
    and writes the result into frames start_index..end_index inclusive, so it returns
    [end_index - start_index + 1, T, C], frame by frame as diffusers' own `_lerp` does.
    """
    mix = _mixer(mode)

    def callback(start_index: int, end_index: int, start_tensor: torch.Tensor,
                 end_tensor: torch.Tensor) -> torch.Tensor:
        count = end_index - start_index + 1
        if count < 1:
            raise MotionError(f"interpolation range {start_index}..{end_index} is empty")
        if count == 1:
            return start_tensor.clone()
        return torch.cat([mix(start_tensor, end_tensor, i / (count - 1)) for i in range(count)])

    callback.mode = mode  # lets the sidecar record which interpolation ran
    return callback
