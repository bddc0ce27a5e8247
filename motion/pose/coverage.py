"""How much of the frame a pose source's skeletons span, and the refusal of sources that span almost nothing.

A skeleton's extent is the larger of its box's width share and height share of the output frame (the box of
its drawn keypoints, clipped to the frame; for skeleton images, of their non-black pixels). A source is
refused when no person in any frame reaches MIN_EXTENT: 5% of the frame, a 26-pixel figure on 512 px. Keypoints
written as fractions but read as pixels span about one pixel (0.2% of 512 px, 1.6% of 64 px); the smallest
people worth guiding (a far figure in a wide shot) span 10% or more. Extent, not area, so a figure seen side on
or lying down (a thin box) is judged by its length. People with fewer than two drawn points have no size and
are not measured; a source where nobody has two is left alone (it is drawn as it is).
"""
from __future__ import annotations

import numpy as np

from motion.errors import PoseSourceError

MIN_EXTENT = 0.05
BLACK_LEVEL = 16  # sources.BLACK_LEVEL: darker pixels are background


def keypoint_extent(poses, threshold: float, width: int, height: int) -> tuple[float, tuple[int, int]] | None:
    """(largest extent, its box (w, h) in pixels) over every person with two or more drawn points, or None."""
    best: tuple[float, tuple[int, int]] | None = None
    for frame in poses:
        for person in np.asarray(frame, np.float32).reshape(-1, 18, 3):
            seen = (person[:, 2] >= threshold) & (person[:, 2] > 0) & np.isfinite(person[:, :2]).all(axis=1)
            if seen.sum() < 2:
                continue
            xs = np.clip(person[seen, 0], 0, width)
            ys = np.clip(person[seen, 1], 0, height)
            box_w, box_h = float(xs.max() - xs.min()), float(ys.max() - ys.min())
            extent = max(box_w / width, box_h / height)
            if best is None or extent > best[0]:
                best = (extent, (round(box_w), round(box_h)))
    return best


def image_extent(images) -> tuple[float, tuple[int, int]] | None:
    """(largest extent, its box) of the non-black pixels of skeleton images, or None when all are black."""
    best: tuple[float, tuple[int, int]] | None = None
    for image in images:
        drawn = np.asarray(image).max(axis=-1) >= BLACK_LEVEL
        if not drawn.any():
            continue
        rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
        box_w, box_h = int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
        extent = max(box_w / drawn.shape[1], box_h / drawn.shape[0])
        if best is None or extent > best[0]:
            best = (extent, (box_w, box_h))
    return best


def check_extent(measured: tuple[float, tuple[int, int]] | None, *, where: str, width: int, height: int,
                 fix: str) -> None:
    """Refuse a source whose largest skeleton spans less than MIN_EXTENT of the frame (one line with the fix)."""
    if measured is None or measured[0] >= MIN_EXTENT:
        return
    extent, (box_w, box_h) = measured
    raise PoseSourceError(
        f"{where}: its skeletons cover almost nothing of the {width}x{height} frame (the largest spans "
        f"{box_w}x{box_h} px, {extent:.1%} of the frame; at least {MIN_EXTENT:.0%} is needed); {fix}")
