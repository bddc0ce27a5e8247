"""contain / cover / stretch on hand-computed coordinates, for keypoints and images alike."""
import numpy as np
import pytest

from motion.errors import PoseSourceError
from motion.pose.fit import check_fit, fit_image, fit_points

# A 100x50 canvas onto 64x64: contain scales by 0.64 (offset y 16), cover by 1.28 (offset x -32).
POINTS = np.float32([[50, 25, 1], [0, 0, 0.5], [100, 50, 1], [25, 25, 1]])


@pytest.mark.parametrize("fit, expected", [
    ("contain", [[32, 32], [0, 16], [64, 48], [16, 32]]),
    ("cover", [[32, 32], [-32, 0], [96, 64], [0, 32]]),
    ("stretch", [[32, 32], [0, 0], [64, 64], [16, 32]]),
])
def test_fit_points(fit, expected):
    out = fit_points(POINTS, (100, 50), 64, 64, fit)
    np.testing.assert_allclose(out[:, :2], expected, atol=1e-4)
    np.testing.assert_array_equal(out[:, 2], POINTS[:, 2])


def test_fit_image_matches_points():
    white = np.full((50, 100, 3), 255, np.uint8)
    contain = fit_image(white, 64, 64, "contain")
    assert contain[:16].max() == 0 and contain[48:].max() == 0 and contain[16:48].min() == 255
    assert fit_image(white, 64, 64, "cover").min() == 255
    assert fit_image(white, 64, 64, "stretch").min() == 255
    # Cover crops the sides: a marker at the source's left quarter lands on the output's left edge.
    marked = np.zeros((50, 100, 3), np.uint8)
    marked[:, 25] = 255
    cover = fit_image(marked, 64, 64, "cover")
    assert cover[32, :2].max() > 0 and cover[32, 4:].max() == 0


def test_unknown_fit():
    with pytest.raises(PoseSourceError, match="fit 'fill' is not one of contain, cover, stretch"):
        check_fit("fill", where="pose source x")
