"""Clean detected keypoint tracks: fill the detector's gaps, drop one-frame spikes, smooth the jitter.

Tracks are arrays (frames, people, 18, 3) in pixels with confidence last. Detectors jitter by a few
pixels from frame to frame (the "DWPose jitter" users complain about) and now and then put a point
somewhere else for a single frame. A median of three frames removes such spikes and leaves steady motion
untouched; a One-Euro filter (Casiez et al., CHI 2012) then removes the jitter while the pose is still and
opens up when it moves fast. The whole track is at hand, so the filter runs forwards and backwards and the
two are averaged: their lags cancel, and a steady pan is followed without delay.
"""
from __future__ import annotations

import math

import numpy as np

MIN_CUTOFF = 1.0  # Hz: how much a still pose is smoothed (lower = smoother)
BETA = 30.0  # how fast the cutoff opens with speed, speed measured in image short sides per second
D_CUTOFF = 1.0  # Hz: cutoff of the speed estimate
END_SPIKE = 8.0  # an end frame off its neighbours' line by this many times the point's typical jitter is a spike


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


def despike(track: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Replace x and y of each point by their median over it and its two neighbour frames, where all
    three are seen: a one-frame outlier goes, a steady or monotonic motion stays exactly as it was."""
    out = np.array(track, np.float32, copy=True)
    if out.shape[0] < 3:
        return out
    window = np.stack([track[:-2], track[1:-1], track[2:]])
    seen = (window[..., 2] >= threshold).all(axis=0)
    median = np.median(window[..., :2], axis=0)
    out[1:-1, ..., :2] = np.where(seen[..., None], median, out[1:-1, ..., :2])
    # The first and last frames have one neighbour. Each is replaced only when it lies far off the line its
    # two neighbours continue, far meaning END_SPIKE times the point's typical distance from the midpoint
    # of its neighbours inside the track (a robust measure of its jitter): plain jitter stays untouched.
    xy = np.asarray(track[..., :2], np.float32)
    typical = np.median(np.linalg.norm(xy[1:-1] - (xy[:-2] + xy[2:]) / 2, axis=-1), axis=0)
    for end, near, far in ((0, 1, 2), (-1, -2, -3)):
        line = 2 * xy[near] - xy[far]
        seen = (track[[end, near, far], ..., 2] >= threshold).all(axis=0)
        spike = seen & (np.linalg.norm(xy[end] - line, axis=-1) > END_SPIKE * typical + 1e-3)
        fixed = np.median(np.stack([xy[end], xy[near], line]), axis=0)
        out[end, ..., :2] = np.where(spike[..., None], fixed, out[end, ..., :2])
    return out


def smooth_track(track: np.ndarray, fps: float, *, scale: float, min_cutoff: float = MIN_CUTOFF,
                 beta: float = BETA, d_cutoff: float = D_CUTOFF, threshold: float = 0.0) -> np.ndarray:
    """Despike, then the mean of a forward and a backward One-Euro pass (zero lag on steady motion).

    Like scipy's filtfilt, the track is first extended at both ends by its odd reflection (a steady motion
    goes on steadily), so that both passes have settled by the first and last real frames."""
    clean = despike(track, threshold)
    n = clean.shape[0]
    pad = min(n - 1, max(2, round(fps)))
    if pad < 1:
        return clean
    head, tail = clean[pad:0:-1].copy(), clean[-2:-pad - 2:-1].copy()
    head[..., :2] = 2 * clean[:1, ..., :2] - head[..., :2]
    tail[..., :2] = 2 * clean[-1:, ..., :2] - tail[..., :2]
    padded = np.concatenate([head, clean, tail])
    kw = dict(scale=scale, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, threshold=threshold)
    forward = one_euro(padded, fps, **kw)
    backward = one_euro(padded[::-1], fps, **kw)[::-1]
    out = clean.copy()
    out[..., :2] = (forward[pad:pad + n, ..., :2] + backward[pad:pad + n, ..., :2]) / 2
    return out
