"""Retarget poses to the output size: `contain` (letterbox), `cover` (crop) or `stretch`.

contain and cover keep the pose's aspect ratio, so a portrait dance video on a square clip keeps its
proportions; both centre the source. Keypoints are moved before drawing (sharp lines at every size); only
sources that are already images are resized as images.
"""
from __future__ import annotations

import numpy as np

FITS = ("contain", "cover", "stretch")


def check_fit(fit: str, *, where: str) -> str:
    """Return `fit` if it is a known mode, else raise a PoseSourceError naming the choices."""
    if fit not in FITS:
        from motion.errors import PoseSourceError

        raise PoseSourceError(f"{where}: fit {fit!r} is not one of {', '.join(FITS)}; pick one of them")
    return fit


def fit_transform(src_w: float, src_h: float, width: int, height: int, fit: str):
    """Scale (sx, sy) and offset (ox, oy) that map source pixels onto the output: x' = x * sx + ox."""
    if fit == "stretch":
        return (width / src_w, height / src_h), (0.0, 0.0)
    pick = min if fit == "contain" else max
    scale = pick(width / src_w, height / src_h)
    return (scale, scale), ((width - src_w * scale) / 2, (height - src_h * scale) / 2)


def fit_points(points: np.ndarray, src_size: tuple[float, float], width: int, height: int,
               fit: str) -> np.ndarray:
    """Move keypoints (..., 3) from a `src_size` (w, h) canvas onto the output; confidence untouched."""
    (sx, sy), (ox, oy) = fit_transform(*src_size, width, height, fit)
    out = np.array(points, np.float32, copy=True)
    out[..., 0] = out[..., 0] * sx + ox
    out[..., 1] = out[..., 1] * sy + oy
    return out


def fit_image(image: np.ndarray, width: int, height: int, fit: str) -> np.ndarray:
    """Resize an RGB skeleton image onto a black (height, width) canvas the same way fit_points moves points."""
    import cv2

    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return np.ascontiguousarray(image)
    (sx, sy), (ox, oy) = fit_transform(src_w, src_h, width, height, fit)
    new_w, new_h = max(1, round(src_w * sx)), max(1, round(src_h * sy))
    shrink = new_w * new_h < src_w * src_h
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0 = round(ox), round(oy)
    # Paste the overlap of the resized image and the canvas (pads for contain, crops for cover).
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + new_w), min(height, y0 + new_h)
    canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0]
    return canvas
