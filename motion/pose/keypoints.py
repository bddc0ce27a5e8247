"""Keypoint layouts (COCO-18, BODY_25, MediaPipe 33) and conversions to the COCO-18 arrays we draw.

A pose of one frame is a float32 array (people, 18, 3): x and y in pixels of its canvas, and a confidence;
confidence 0 means the point is missing.
"""
from __future__ import annotations

import numpy as np

# OpenPose COCO-18 order, the layout OpenPose ControlNets were trained on. "r_" is the person's right.
COCO18 = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
INDEX = {name: i for i, name in enumerate(COCO18)}

# BODY_25 index of each COCO-18 point (BODY_25 adds mid_hip at 8 and six foot points at 19-24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# MediaPipe Pose (33 landmarks) index of each COCO-18 point; the neck (None) is the shoulders' midpoint.
MEDIAPIPE_TO_COCO18 = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
MP_LEFT_SHOULDER, MP_RIGHT_SHOULDER = 11, 12


def empty_pose(people: int = 0) -> np.ndarray:
    """A pose array with `people` people and every point missing."""
    return np.zeros((people, len(COCO18), 3), np.float32)


def from_openpose_flat(flat, *, where: str) -> np.ndarray:
    """One person's `pose_keypoints_2d` [x, y, c, ...] (COCO-18 or BODY_25, told by length) → (18, 3)."""
    from motion.errors import PoseSourceError

    values = np.asarray(flat, np.float32).reshape(-1)
    if values.size == 18 * 3:
        return values.reshape(18, 3).copy()
    if values.size == 25 * 3:
        return values.reshape(25, 3)[list(BODY25_TO_COCO18)].copy()
    raise PoseSourceError(
        f"{where}: pose_keypoints_2d has {values.size} numbers, expected 54 (COCO-18) or 75 (BODY_25); "
        f"export with OpenPose's COCO or BODY_25 model")


def from_mediapipe(landmarks, width: int, height: int) -> np.ndarray:
    """MediaPipe's 33 normalised landmarks [x, y, z, visibility] → one COCO-18 person (18, 3) in pixels."""
    lm = np.asarray(landmarks, np.float32)
    out = np.zeros((18, 3), np.float32)
    for coco, mp_index in enumerate(MEDIAPIPE_TO_COCO18):
        if mp_index is None:  # neck: OpenPose puts it between the shoulders
            a, b = lm[MP_LEFT_SHOULDER], lm[MP_RIGHT_SHOULDER]
            x, y, vis = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[3], b[3])
        else:
            x, y, _, vis = lm[mp_index]
        out[coco] = (x * width, y * height, vis)
    return out


def stack_people(people: list[np.ndarray]) -> np.ndarray:
    """A list of (18, 3) people → one (people, 18, 3) frame."""
    if not people:
        return empty_pose(0)
    return np.stack(people).astype(np.float32)

