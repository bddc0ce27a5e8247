"""Draw OpenPose-style skeletons: the exact look OpenPose ControlNets were trained on.

The limb pairs, colours and shapes follow the OpenPose body renderer as re-implemented in lllyasviel's
ControlNet annotator and controlnet_aux (`open_pose/util.py`, `draw_bodypose`): 17 limbs drawn as filled
ellipses of half-width 4 px at 60% of their colour over a black canvas, then every keypoint as a filled
circle of radius 4 px in its full colour. Those sizes are for a 512 px image; we scale them with the shorter
side so a 768 px frame looks like a 512 px one resized.
"""
from __future__ import annotations

import numpy as np

# RGB colour per COCO-18 keypoint, and per limb (limb i takes colour i). From the OpenPose / ControlNet
# annotator convention; do not reorder: ControlNets read body parts from these colours.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# The 17 limbs as pairs of COCO-18 indices (the annotator's 1-based limbSeq minus one; its two
# ear-shoulder pairs are not drawn by the 17-limb loop, so they are left out here).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

LIMB_SHADE = 0.6  # limbs at 60% of their colour, as in the annotator
REFERENCE_SIDE = 512  # the size the stick width and radius below were tuned for
STICK_WIDTH = 4
POINT_RADIUS = 4
THRESHOLD = 0.3


def stroke_sizes(width: int, height: int) -> tuple[int, int]:
    """Stick half-width and keypoint radius for an image of this size (never below 1 px)."""
    scale = min(width, height) / REFERENCE_SIDE
    return max(1, round(STICK_WIDTH * scale)), max(1, round(POINT_RADIUS * scale))


def draw_pose(people: np.ndarray, width: int, height: int, *, threshold: float = THRESHOLD) -> np.ndarray:
    """One frame's people (P, 18, 3) in pixels → RGB uint8 (height, width, 3) skeleton on black."""
    import cv2

    canvas = np.zeros((height, width, 3), np.uint8)
    stick, radius = stroke_sizes(width, height)
    people = np.asarray(people, np.float32).reshape(-1, len(COLORS), 3).copy()
    # Points far off-canvas (a `cover` crop) would overflow OpenCV's int coordinates.
    people[..., 0] = np.clip(people[..., 0], -4 * width, 5 * width)
    people[..., 1] = np.clip(people[..., 1], -4 * height, 5 * height)
    for person in people:
        # Confidence 0 is "missing" in OpenPose files, whatever the threshold.
        seen = (person[:, 2] >= threshold) & (person[:, 2] > 0) & np.isfinite(person[:, :2]).all(axis=1)
        for (a, b), color in zip(LIMBS, COLORS):
            if not (seen[a] and seen[b]):
                continue
            (xa, ya), (xb, yb) = person[a, :2], person[b, :2]
            length = float(np.hypot(xa - xb, ya - yb))
            angle = np.degrees(np.arctan2(ya - yb, xa - xb))
            centre = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
            poly = cv2.ellipse2Poly(centre, (int(length / 2), stick), int(round(angle)), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, [int(c * LIMB_SHADE) for c in color])
        for (x, y, _), color, ok in zip(person, COLORS, seen):
            if ok:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, color, thickness=-1)
    return canvas
