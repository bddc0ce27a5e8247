"""Fit an output under a byte budget: lower quality first (binary search), then size, then fps."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from animate.encode.base import MAX_BYTES, fit_inside, rate_text, resize_frames
from animate.encode.targets import TARGETS, Target, get_target
from animate.errors import EncodeError
from animate.encode.interpolate import interpolate

SHRINK = (1.0, 0.85, 0.7, 0.55, 0.4, 0.3, 0.2)


def resolve_budget(fmt: str, target, max_bytes) -> tuple[Target | None, int | None]:
    tgt = get_target(fmt, target) if target is not None else None
    max_bytes = MAX_BYTES(fmt, "max_bytes", max_bytes)
    budget = min(b for b in (max_bytes, tgt.max_bytes if tgt else None) if b) if (max_bytes or tgt) else None
    return tgt, budget


def search(attempt: Callable[[int, float, int, Path], int], dest: Path, budget: int | None,
           levels: list, steps: list[int], where: str) -> dict:
    """Find the best (level, scale, step) whose output fits `budget` and leave that file at `dest`.

    attempt(level, scale, step, path) writes one candidate and returns its size. `levels` go from best
    to worst quality; `steps` are frame-skip factors (1 = all frames).
    """
    if budget is None:
        size = attempt(levels[0], 1.0, 1, dest)
        return {"quality": levels[0], "scale": 1.0, "frame_step": 1, "attempts": 1, "bytes": size}
    tries: dict[tuple, tuple[int, Path]] = {}
    counter = iter(range(10_000))

    def run(level, scale, step) -> int:
        key = (level, scale, step)
        if key not in tries:
            path = dest.with_name(f"{dest.stem}.try{next(counter)}{dest.suffix}")
            tries[key] = (attempt(level, scale, step, path), path)
        return tries[key][0]

    try:
        best = None
        for step in steps:  # fps last
            for scale in SHRINK:  # then size
                if run(levels[0], scale, step) <= budget:
                    best = (0, scale, step)
                elif run(levels[-1], scale, step) <= budget:
                    lo, hi = 0, len(levels) - 1  # levels[lo] too big, levels[hi] fits
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        lo, hi = (lo, mid) if run(levels[mid], scale, step) <= budget else (mid, hi)
                    best = (hi, scale, step)
                if best:
                    break
            if best:
                break
        if best is None:
            smallest = min(size for size, _ in tries.values())
            raise EncodeError(f"cannot fit under {budget:,} bytes; smallest reached {smallest:,} bytes "
                              f"(lowest quality, {SHRINK[-1]:.0%} size, 1/{steps[-1]} of the frames)",
                              where=where, hint="raise max_bytes, shorten the clip or choose another target")
        index, scale, step = best
        size, path = tries[(levels[index], scale, step)]
        os.replace(path, dest)
        steps_done = []
        if index:
            steps_done.append(f"quality {levels[0]} → {levels[index]}")
        if scale != 1.0:
            steps_done.append(f"size ×{scale:g}")
        if step != 1:
            steps_done.append(f"kept 1 of every {step} frames")
        return {"quality": levels[index], "scale": scale, "frame_step": step, "attempts": len(tries),
                "bytes": size, "budget": budget, "fitted": steps_done}
    finally:
        for _, path in tries.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def scaled(frames: np.ndarray, base: tuple[int, int], scale: float, step: int, even: bool) -> np.ndarray:
    w, h = base
    if scale != 1.0:
        w, h = fit_inside(w, h, None, None, scale, even=even)
    return resize_frames(frames[::step], w, h)


def target_box(width: int, height: int, tgt: Target | None) -> tuple[int, int]:
    """The size a GIF is encoded at before any byte fitting: the clip shrunk into the target's box."""
    return fit_inside(width, height, tgt.max_width if tgt else None, tgt.max_height if tgt else None)


def pad_to_aspect(frames: np.ndarray, aspect: tuple[int, int]) -> np.ndarray:
    """Pad with black bars (centred) to width:height = aspect; never crops or stretches."""
    _, h, w, _ = frames.shape
    aw, ah = aspect
    if w * ah > h * aw:  # too wide: add rows
        new_w, new_h = w, -(-w * ah // aw)
    else:
        new_w, new_h = -(-h * aw // ah), h
    new_w += new_w % 2
    new_h += new_h % 2
    top, left = (new_h - h) // 2, (new_w - w) // 2
    return np.pad(frames, ((0, 0), (top, new_h - h - top), (left, new_w - w - left), (0, 0)))


def target_fps_factor(tgt: Target, fps: float, frames: int, interpolate: int = 1) -> int:
    """How many times a clip of `frames` at `fps` is multiplied to reach the target's minimum fps.

    Refuses a clip above the target's fps limit or over its duration limit: both are known from fps and
    frame count alone, so the same rule serves the up-front check and the writer. `interpolate` (already
    applied to fps and frames) only makes the message say where the fps came from.
    """
    if tgt.max_fps and fps > tgt.max_fps + 1e-9:
        key = "interpolate" if interpolate > 1 and fps / interpolate <= tgt.max_fps + 1e-9 else "fps"
        raise EncodeError(f"fps {rate_text(fps, interpolate)} is above {tgt.name}'s limit of {tgt.max_fps:g}",
                          where=f"outputs.{tgt.fmt}.{key}",
                          hint=f"keep fps × interpolate ≤ {tgt.max_fps:g}" if key == "interpolate"
                          else f"render or encode at ≤ {tgt.max_fps:g} fps")
    factor = int(np.ceil(tgt.min_fps / fps - 1e-9)) if tgt.min_fps and fps < tgt.min_fps - 1e-9 else 1
    seconds = frames * factor / (fps * factor)  # what the writer measures after raising the fps
    if tgt.max_seconds and seconds > tgt.max_seconds:
        longer = [f"{t.name} ({t.max_seconds:g} s)" if t.max_seconds else t.name for t in TARGETS.values()
                  if t.fmt == tgt.fmt and (t.max_seconds or float("inf")) >= seconds]
        raise EncodeError(f"clip lasts {seconds:.1f} s, over {tgt.name}'s limit of {tgt.max_seconds:g} s",
                          where=f"outputs.{tgt.fmt}.target",
                          hint="trim the clip or choose another target"
                          + (f": {', '.join(longer)} allow it" if longer else ""))
    return factor


def prepare_for_target(frames: np.ndarray, fps: float, tgt: Target, fps_mode: str) -> tuple[np.ndarray, float, list]:
    """Raise fps to the platform minimum, loop to its minimum duration, pad to its aspect, fit its size."""
    done = []
    factor = target_fps_factor(tgt, fps, len(frames))
    if factor > 1:
        if fps_mode == "duplicate":
            frames = np.repeat(frames, factor, axis=0)
        else:
            frames = interpolate(frames, factor)
        fps *= factor
        done.append(f"fps ×{factor} by {fps_mode} → {fps:g}")
    seconds = len(frames) / fps
    if tgt.min_seconds and seconds < tgt.min_seconds:
        loops = int(np.ceil(tgt.min_seconds * fps / len(frames) - 1e-9))
        frames = np.concatenate([frames] * loops)
        done.append(f"looped ×{loops} → {len(frames) / fps:.2f} s")
    if tgt.aspect:
        before = frames.shape[1:3]
        frames = pad_to_aspect(frames, tgt.aspect)
        if frames.shape[1:3] != before:
            done.append(f"padded to {tgt.aspect[0]}:{tgt.aspect[1]}")
    _, h, w, _ = frames.shape
    size = fit_inside(w, h, tgt.max_width, tgt.max_height, even=True)
    if size != (w + w % 2, h + h % 2) and size != (w, h):
        frames = resize_frames(frames, *size)
        done.append(f"resized to {size[0]}×{size[1]}")
    return frames, fps, done


