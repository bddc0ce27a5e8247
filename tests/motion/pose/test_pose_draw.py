"""OpenPose drawing checked against hand-computed pixels at 64x64."""
import numpy as np

from motion.pose import pose_frames
from motion.pose.draw import COLORS, LIMBS, draw_pose, stroke_sizes
from motion.pose.keypoints import INDEX, empty_pose
from pose_helpers import person, write_openpose

NECK, R_SHOULDER, R_ELBOW = INDEX["neck"], INDEX["r_shoulder"], INDEX["r_elbow"]


def one_limb(elbow_conf=0.1):
    pose = empty_pose(1)
    pose[0, NECK] = (20, 32, 1.0)
    pose[0, R_SHOULDER] = (44, 32, 0.9)
    pose[0, R_ELBOW] = (44, 52, elbow_conf)
    return pose


def test_colour_table_is_the_openpose_one():
    assert len(COLORS) == 18 and len(LIMBS) == 17
    assert LIMBS[0] == (NECK, R_SHOULDER) and COLORS[0] == (255, 0, 0)
    assert stroke_sizes(512, 512) == (4, 4) and stroke_sizes(768, 1024) == (6, 6)
    assert stroke_sizes(64, 64) == (1, 1)


def test_single_limb_pixels():
    image = draw_pose(one_limb(), 64, 64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # Limb neck→r_shoulder is limb 0: red at 60% over black.
    assert tuple(image[32, 32]) == (153, 0, 0)
    assert tuple(image[32, 26]) == (153, 0, 0)
    # Keypoint centres in their full colours: neck is point 1, r_shoulder point 2.
    assert tuple(image[32, 20]) == COLORS[NECK] == (255, 85, 0)
    assert tuple(image[32, 44]) == COLORS[R_SHOULDER] == (255, 170, 0)
    # Far away: black. Outside the 1 px half-width: black.
    assert tuple(image[5, 5]) == (0, 0, 0)
    assert tuple(image[36, 32]) == (0, 0, 0)


def test_low_confidence_point_and_its_limb_not_drawn():
    image = draw_pose(one_limb(elbow_conf=0.1), 64, 64)
    assert tuple(image[52, 44]) == (0, 0, 0)  # the elbow itself
    assert tuple(image[42, 44]) == (0, 0, 0)  # midpoint of shoulder→elbow
    shown = draw_pose(one_limb(elbow_conf=0.8), 64, 64)
    assert tuple(shown[52, 44]) == COLORS[R_ELBOW]
    assert tuple(shown[42, 44]) == tuple(int(c * 0.6) for c in COLORS[2])  # limb 2 is r_shoulder→r_elbow


def test_threshold_is_adjustable():
    assert tuple(draw_pose(one_limb(0.1), 64, 64, threshold=0.05)[52, 44]) == COLORS[R_ELBOW]


def test_missing_points_stay_missing_at_threshold_zero():
    # Every point but the shoulder and elbow is (0, 0, 0): missing, not a dot in the top-left corner.
    image = draw_pose(one_limb(0.8), 64, 64, threshold=0.0)
    assert tuple(image[52, 44]) == COLORS[R_ELBOW] and image[:6, :6].max() == 0


def test_openpose_json_several_people_and_body25(tmp_path):
    a = person(neck=(10, 10, 1), r_shoulder=(30, 10, 1))
    # BODY_25: same points at the same BODY_25 indices (0-7 match COCO), mid_hip (8) is dropped.
    b25 = [0.0] * 75
    b25[1 * 3: 1 * 3 + 3] = [10, 50, 1]
    b25[2 * 3: 2 * 3 + 3] = [30, 50, 1]
    b25[8 * 3: 8 * 3 + 3] = [20, 60, 1]  # mid_hip: not a COCO-18 point
    b25[9 * 3: 9 * 3 + 3] = [25, 60, 1]  # r_hip → COCO index 8
    src = write_openpose(tmp_path / "poses.json", [[a, b25]], canvas=(64, 64))
    image = pose_frames(src, frames=3, fps=8, width=64, height=64, cache_dir=tmp_path / "c")[2]
    assert tuple(image[10, 10]) == COLORS[NECK] and tuple(image[50, 10]) == COLORS[NECK]
    assert tuple(image[10, 20]) == (153, 0, 0) and tuple(image[50, 20]) == (153, 0, 0)
    assert tuple(image[60, 25]) == COLORS[INDEX["r_hip"]]
    assert tuple(image[60, 20]) != COLORS[8]  # mid_hip was not drawn as a point of its own
