"""Poses written in the script as keyframes, interpolated per frame.

    {0: {nose: [0.5, 0.2], neck: [0.5, 0.3], r_shoulder: [0.4, 0.3]}, 12: {...}}

Keys are frame numbers; values are one person (a mapping of COCO-18 names to [x, y] or [x, y, confidence])
or a list of people. Coordinates are fractions of the output frame, or pixels of a `canvas: [w, h]`.
Between two keyframes each point moves linearly; before the first and after the last the pose holds. A
point missing from either neighbouring keyframe is missing on the frames between them.
"""
from __future__ import annotations

import difflib

import numpy as np

from motion.errors import PoseSourceError
from motion.pose.keypoints import COCO18, INDEX, empty_pose


def _person(points, *, frame: int) -> np.ndarray:
    if not isinstance(points, dict):
        raise PoseSourceError(f"pose keyframe {frame}: expected a mapping of keypoint names to [x, y], "
                              f"got {type(points).__name__}")
    out = np.zeros((len(COCO18), 3), np.float32)
    for name, value in points.items():
        if name not in INDEX:
            close = difflib.get_close_matches(str(name), COCO18, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(COCO18)}"
            raise PoseSourceError(f"pose keyframe {frame}: unknown keypoint {name!r}; {hint}")
        if value is None:
            continue
        try:
            coords = [float(v) for v in value]
        except (TypeError, ValueError):
            coords = []
        if len(coords) not in (2, 3):
            raise PoseSourceError(f"pose keyframe {frame}: {name} must be [x, y] or [x, y, confidence], "
                                  f"got {value!r}")
        out[INDEX[name]] = coords if len(coords) == 3 else coords + [1.0]
    return out


def parse_keyframes(source: dict, frames: int) -> dict[int, np.ndarray]:
    """{frame: (people, 18, 3)} from the script's mapping, checked against the clip's frame count."""
    if not source:
        raise PoseSourceError("pose keyframes: empty; give at least one {frame: {keypoint: [x, y]}}")
    keyed: dict[int, np.ndarray] = {}
    for key, value in source.items():
        try:
            frame = int(key)
        except (TypeError, ValueError):
            raise PoseSourceError(f"pose keyframes: key {key!r} is not a frame number; "
                                  f"write {{0: {{...}}, 12: {{...}}}}") from None
        if not 0 <= frame < frames:
            raise PoseSourceError(f"pose keyframe {frame}: outside the clip's frames 0-{frames - 1}; "
                                  f"move it or raise `frames`")
        people = value if isinstance(value, list) else [value]
        keyed[frame] = np.stack([_person(p, frame=frame) for p in people]) if people else empty_pose(0)
    return dict(sorted(keyed.items()))


def interpolate(keyed: dict[int, np.ndarray], frames: int) -> list[np.ndarray]:
    """One (people, 18, 3) pose per frame from sorted keyframes (linear; held at both ends)."""
    keys = list(keyed)
    most = max(p.shape[0] for p in keyed.values())
    padded = {k: np.concatenate([p, empty_pose(most - p.shape[0])]) for k, p in keyed.items()}
    out = []
    for f in range(frames):
        before = [k for k in keys if k <= f]
        after = [k for k in keys if k >= f]
        a = before[-1] if before else after[0]
        b = after[0] if after else before[-1]
        if a == b:
            out.append(padded[a].copy())
            continue
        w = (f - a) / (b - a)
        pa, pb = padded[a], padded[b]
        pose = (1 - w) * pa + w * pb
        both = (pa[..., 2] > 0) & (pb[..., 2] > 0)
        pose[~both] = 0.0  # missing at either end: missing in between
        out.append(pose.astype(np.float32))
    return out
