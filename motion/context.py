"""Context windows (FreeNoise) and seamless loops.

The motion modules attend over at most one window of frames; a longer clip is denoised in overlapping windows
whose results are blended (diffusers' FreeNoise). `context_plan` turns a clip's `context:` settings into the
windows diffusers will use; `LoopShift` rolls the latents along the frame axis between denoising steps so the
clip's seam (last frame → first) sits inside a window for most steps, which makes the last frame flow into the
first; `loop_closure` measures how well it did.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import MotionError

WEIGHTINGS = ("flat", "pyramid", "delayed_reverse_sawtooth")
BLENDS = ("auto", "motion", "unet")
NOISE_TYPES = ("shuffle_context", "repeat_context", "random")
# Peers (ComfyUI AnimateDiff-Evolved, sd-webui-animatediff, prompt-travel) slide 16-frame windows with a quarter
# overlap: AnimateDiff's motion modules were trained on 16-frame clips, and a quarter overlap blends neighbours
# with a third of the windows a stride of 4 needs.
PEER_LENGTH = 16
# From this many frames diffusers' FreeNoise split inference runs the UNet's spatial blocks a few frames at a
# time and its motion modules a few hundred pixels at a time (see docs/motion.md, "Long clips and memory").
SPLIT_FROM_FRAMES = 64
# From this many frames `blend: auto` runs the whole UNet one window at a time (motion.unet_windows), so memory
# is bounded by the window; shorter clips blend inside the motion modules, as diffusers' FreeNoise does.
UNET_FROM_FRAMES = 128


@dataclass(frozen=True)
class ContextPlan:
    """The windows one clip is denoised in: `stride` is diffusers' context_stride (length − overlap)."""

    length: int
    overlap: int
    weighting: str
    noise: str
    windows: tuple  # of (start, end), end exclusive, as diffusers' FreeNoise blocks visit them
    blend: str = "motion"  # where windows are blended: in the motion modules (FreeNoise) or on the UNet's output

    @property
    def stride(self) -> int:
        return self.length - self.overlap

    def record(self) -> dict:
        return {"length": self.length, "overlap": self.overlap, "stride": self.stride, "weighting": self.weighting,
                "noise": self.noise, "blend": self.blend, "windows": [list(w) for w in self.windows]}

    def describe(self) -> str:
        if len(self.windows) == 1:
            return f"one {self.length}-frame window"
        shown = ", ".join(f"{s}-{e - 1}" for s, e in self.windows[:4])
        more = f", … {len(self.windows) - 5} more …, {self.windows[-1][0]}-{self.windows[-1][1] - 1}" \
            if len(self.windows) > 5 else "".join(f", {s}-{e - 1}" for s, e in self.windows[4:])
        where = ", the whole UNet a window at a time" if self.blend == "unet" else ""  # else FreeNoise's own
        return (f"{len(self.windows)} windows of {self.length} (overlap {self.overlap}, {self.weighting}, "
                f"{self.noise}{where}): {shown}{more}")


def context_plan(frames: int, max_length: int, length: int | None = None, overlap: int | None = None,
                 weighting: str = "pyramid", noise: str = "shuffle_context", blend: str = "auto") -> ContextPlan:
    """The windows for a clip of `frames` on an adapter whose positional encoding holds `max_length` frames.

    Unset length: the whole clip in one window when it fits the adapter (the same frames as no windows at all),
    else 16-frame windows (or the adapter's length, if shorter). Unset overlap: a quarter of the length. A length
    above the clip's frames is cut to the clip (diffusers fails on windows longer than the clip). `blend`: see
    `resolved_blend`.
    """
    if weighting not in WEIGHTINGS:
        raise MotionError(f"context weighting {weighting!r} is unknown; use one of {', '.join(WEIGHTINGS)}")
    if noise not in NOISE_TYPES:
        raise MotionError(f"context noise {noise!r} is unknown; use one of {', '.join(NOISE_TYPES)}")
    if blend not in BLENDS:
        raise MotionError(f"context blend {blend!r} is unknown; use one of {', '.join(BLENDS)}")
    if length is None:
        length = frames if frames <= max_length else min(PEER_LENGTH, max_length)
    length = max(1, min(int(length), frames))
    overlap = length // 4 if overlap is None else int(overlap)
    if not 0 <= overlap < max(length, 1) and length > 1:
        raise MotionError(f"context overlap {overlap} must be at least 0 and less than the window length {length}")
    overlap = min(overlap, length - 1) if length > 1 else 0
    return ContextPlan(length=length, overlap=overlap, weighting=weighting, noise=noise,
                       windows=tuple(windows(frames, length, length - overlap)), blend=resolved_blend(frames, blend))


def resolved_blend(frames: int, blend: str | None) -> str:
    """`motion` (diffusers' FreeNoise: windows blended inside every motion module, the whole clip through every
    layer) or `unet` (the whole UNet one window at a time, predictions blended: memory bounded by the window);
    `auto` is `unet` from UNET_FROM_FRAMES frames."""
    if blend in (None, "auto"):
        return "unet" if frames >= UNET_FROM_FRAMES else "motion"
    return blend


def windows(frames: int, length: int, stride: int) -> list[tuple[int, int]]:
    """diffusers' FreeNoiseTransformerBlock windows: starts every `stride` frames, and a last window aligned to
    the clip's end when the strides do not reach it."""
    out = [(start, min(frames, start + length)) for start in range(0, frames - length + 1, stride)]
    if not out or out[-1][1] != frames:
        out.append((frames - length, frames))
    return out


def splits_long_clip(frames: int, blend: str = "motion") -> bool:
    """Whether a clip blended in the motion modules is long enough for split inference (same frames, less
    memory); a UNet that sees one window at a time needs none."""
    return blend == "motion" and frames >= SPLIT_FROM_FRAMES


def split_sizes(frames: int, blend: str = "motion") -> dict | None:
    """diffusers' split sizes for a clip, None below SPLIT_FROM_FRAMES. The resnets and spatial attention take 8
    frames at a time; the motion modules take every frame of `spatial_split_size` pixels at a time, so that chunk
    grows with the clip: it shrinks from 256 pixels (up to 256 frames) to 64 (from 1024) to hold about the same
    bytes (measured at 256 frames on the tiny kit: 64 instead of 256 cut the peak above the model by 30 %)."""
    if not splits_long_clip(frames, blend):
        return None
    return {"spatial_split_size": max(64, min(256, 256 * 256 // frames)), "temporal_split_size": 8}


def repeat_context_latents(shape: tuple, length: int, generator, device, dtype):
    """The noise diffusers' `repeat_context` means to make: one window of noise (the first `length` frames).
    diffusers compares the context length, not the noise type, with "repeat_context", so it draws noise for every
    frame and its repeat is a no-op; handed this one window as `latents`, its own branch repeats it."""
    from diffusers.utils.torch_utils import randn_tensor

    batch, channels, _, height, width = shape
    return randn_tensor((batch, channels, length, height, width), generator=generator, device=device, dtype=dtype)


class LoopShift:
    """Rolls a clip's latents along the frame axis between denoising steps for a seamless loop.

    Before step i the latents are rolled by `offset(i)` frames, spread evenly over the clip, so the seam
    (last frame → first) lies inside the motion modules' window for every step but the first, and every pair of
    neighbouring frames is a window edge for at most one step. After the last step the latents are rolled back,
    so the output starts at frame 0. Per-frame prompt embeddings, pose frames and the scheduler's own per-frame
    state roll with them.
    """

    def __init__(self, frames: int):
        self.frames = frames
        self.current = 0

    def offset(self, step: int, steps: int) -> int:
        return (step * self.frames) // max(steps, 1) % self.frames

    def shift_for(self, next_step: int, steps: int) -> int:
        """How far to roll after a step so the latents sit at the next step's offset (0 after the last)."""
        target = self.offset(next_step, steps) if next_step < steps else 0
        shift = (target - self.current) % self.frames
        self.current = target
        return shift

    def roll_latents(self, latents, shift: int):
        import torch

        return torch.roll(latents, shifts=shift, dims=2) if shift else latents

    def roll_frames(self, tensor, shift: int, current: bool = False):
        """Roll a tensor holding k·frames rows along dim 0 (per-frame prompt embeddings, pose frames), each of
        the k blocks (e.g. negative and positive halves) on its own; `current` rolls by the present offset."""
        import torch

        shift = self.current if current else shift
        if not shift or tensor is None or tensor.shape[0] % self.frames:
            return tensor
        blocks = tensor.reshape(tensor.shape[0] // self.frames, self.frames, *tensor.shape[1:])
        return torch.roll(blocks, shifts=shift, dims=1).reshape(tensor.shape)

    def roll_scheduler(self, scheduler, shift: int, shape: tuple) -> None:
        """Roll any per-frame tensor a multistep scheduler keeps between steps (DPM++ model outputs, PNDM ets)."""
        if not shift:
            return
        for name, value in list(vars(scheduler).items()):
            if _is_latent(value, shape):
                setattr(scheduler, name, self.roll_latents(value, shift))
            elif isinstance(value, list) and any(_is_latent(v, shape) for v in value):
                setattr(scheduler, name, [self.roll_latents(v, shift) if _is_latent(v, shape) else v for v in value])


def _is_latent(value, shape: tuple) -> bool:
    return hasattr(value, "shape") and tuple(value.shape) == tuple(shape)


def loop_closure(frames) -> float | None:
    """How far the last frame is from the first, relative to the clip's own motion: the mean absolute
    last→first difference divided by the mean frame-to-frame difference (1 ≈ the seam looks like any other
    cut between neighbours; lower is smoother). None for a still clip. Reads one pair of frames at a time, so a
    long uint8 clip is never copied whole."""
    import numpy as np

    if len(frames) < 2:
        return None

    def apart(a, b) -> float:
        return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())

    mean_step = sum(apart(frames[i + 1], frames[i]) for i in range(len(frames) - 1)) / (len(frames) - 1)
    if mean_step == 0:  # every frame equals the next, so the seam is 0 as well
        return None
    return round(apart(frames[-1], frames[0]) / mean_step, 4)
