"""Keyframed poses: linear interpolation, holds at both ends, missing points, pixel canvases."""
import numpy as np
import pytest

from motion.errors import PoseSourceError
from motion.pose import pose_frames
from motion.pose.draw import COLORS
from motion.pose.keyframes import interpolate, parse_keyframes
from motion.pose.keypoints import INDEX

NOSE, NECK, R_SHOULDER = INDEX["nose"], INDEX["neck"], INDEX["r_shoulder"]
KEYS = {
    0: {"nose": [0.0, 0.0], "neck": [0.5, 0.5]},
    12: {"nose": [1.0, 0.5], "neck": [0.5, 1.0], "r_shoulder": [0.25, 0.75, 0.8]},
}


def poses(keys=KEYS, frames=16):
    return interpolate(parse_keyframes(keys, frames), frames)


def test_midpoint_and_quarter():
    p = poses()
    np.testing.assert_allclose(p[6][0, NOSE], [0.5, 0.25, 1.0])
    np.testing.assert_allclose(p[3][0, NOSE], [0.25, 0.125, 1.0])
    np.testing.assert_allclose(p[6][0, NECK], [0.5, 0.75, 1.0])


def test_held_after_last_and_before_first():
    p = poses()
    np.testing.assert_allclose(p[15][0, NOSE], [1.0, 0.5, 1.0])
    late = poses({4: {"nose": [0.2, 0.2]}, 10: {"nose": [0.8, 0.2]}})
    np.testing.assert_allclose(late[0][0, NOSE], [0.2, 0.2, 1.0])
    np.testing.assert_allclose(late[7][0, NOSE], [0.5, 0.2, 1.0])


def test_point_missing_in_one_keyframe_stays_missing_between():
    p = poses()
    assert p[0][0, R_SHOULDER, 2] == 0 and p[6][0, R_SHOULDER, 2] == 0
    np.testing.assert_allclose(p[12][0, R_SHOULDER], [0.25, 0.75, 0.8])
    np.testing.assert_allclose(p[14][0, R_SHOULDER], [0.25, 0.75, 0.8])


def test_drawn_in_pixels_of_the_output_and_of_a_canvas():
    frames = pose_frames({0: {"nose": [0.25, 0.5]}}, frames=2, fps=8, width=64, height=32)
    assert tuple(frames[1][16, 16]) == COLORS[NOSE]
    # Pixels on a 200x100 canvas, contained in 64x64: scale 0.32, offset y = 16.
    frames = pose_frames({"0": {"nose": [100, 50]}}, frames=1, fps=8, width=64, height=64, canvas=[200, 100])
    assert tuple(frames[0][32, 32]) == COLORS[NOSE]


def test_several_people():
    frames = pose_frames({0: [{"nose": [0.25, 0.5]}, {"nose": [0.75, 0.5]}]}, frames=1, fps=8,
                         width=64, height=64)
    assert tuple(frames[0][32, 16]) == COLORS[NOSE] == tuple(frames[0][32, 48])


@pytest.mark.parametrize("keys, needle", [
    ({0: {"nosе": [0, 0]}}, "unknown keypoint"),
    ({0: {"r_sholder": [0, 0]}}, "did you mean r_shoulder"),
    ({20: {"nose": [0, 0]}}, "outside the clip's frames 0-15"),
    ({"start": {"nose": [0, 0]}}, "not a frame number"),
    ({0: {"nose": [0]}}, "must be [x, y]"),
])
def test_keyframe_errors(keys, needle):
    with pytest.raises(PoseSourceError, match=None) as info:
        pose_frames(keys, frames=16, fps=8, width=64, height=64)
    assert needle in str(info.value) and "\n" not in str(info.value)
