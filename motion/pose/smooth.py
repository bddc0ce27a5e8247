"""Clean detected keypoint tracks: fill the detector's gaps, then smooth jitter with a One-Euro filter.

Tracks are arrays (frames, people, 18, 3) in pixels with confidence last. Detectors jitter by a few
pixels from frame to frame (the "DWPose jitter" users complain about); a One-Euro filter (Casiez et al.,
CHI 2012) removes it while the pose is still and opens up when it moves fast, so it adds little lag.
"""
from __future__ import annotations

import math

import numpy as np

MIN_CUTOFF = 1.0  # Hz: how much a still pose is smoothed (lower = smoother)
BETA = 30.0  # how fast the cutoff opens with speed, speed measured in image short sides per second
D_CUTOFF = 1.0  # Hz: cutoff of the speed estimate


def fill_gaps(track: np.ndarray, threshold: float) -> np.ndarray:
    """Interpolate each point linearly across frames where it is below `threshold`; hold it at the ends."""
    out = np.array(track, np.float32, copy=True)
    frames = np.arange(out.shape[0])
    for person in range(out.shape[1]):
        for point in range(out.shape[2]):
            conf = out[:, person, point, 2]
            seen = conf >= threshold
            if seen.all() or not seen.any():
                continue  # nothing to fill, or never seen: it stays missing
            for axis in (0, 1):
                out[~seen, person, point, axis] = np.interp(
                    frames[~seen], frames[seen], out[seen, person, point, axis])
            # A filled point is as trustworthy as the weaker of the detections it was drawn from.
            low = np.interp(frames[~seen], frames[seen], conf[seen])
            out[~seen, person, point, 2] = np.maximum(low, threshold)
    return out


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(track: np.ndarray, fps: float, *, scale: float, min_cutoff: float = MIN_CUTOFF,
             beta: float = BETA, d_cutoff: float = D_CUTOFF, threshold: float = 0.0) -> np.ndarray:
    """One-Euro filter x and y of every point over frames; `scale` (px) is the unit speed is measured in."""
    out = np.array(track, np.float32, copy=True)
    if out.shape[0] < 2:
        return out
    dt = 1.0 / fps
    a_d = _alpha(d_cutoff, dt)
    xy = out[..., :2] / scale
    seen = out[..., 2] >= threshold
    prev = xy[0].copy()
    speed = np.zeros_like(prev)
    for t in range(1, len(xy)):
        raw = xy[t]
        speed = a_d * (raw - prev) / dt + (1 - a_d) * speed
        cutoff = min_cutoff + beta * np.abs(speed)
        alpha = 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))
        new = alpha * raw + (1 - alpha) * prev
        # A point that (re)appears starts fresh instead of sliding in from where it was last seen.
        restart = (seen[t] & ~seen[t - 1])[..., None]
        new = np.where(restart, raw, new)
        speed = np.where(restart, 0.0, speed)
        xy[t] = np.where(seen[t][..., None], new, raw)
        prev = xy[t]
    out[..., :2] = xy * scale
    return out
