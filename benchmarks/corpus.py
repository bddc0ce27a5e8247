"""Benchmark corpus: scikit-image sample photographs panned, zoomed and warped into short clips.

Real photographs carry the gradients, texture and noise of rendered clips, and the camera moves are the
smooth pans/zooms AnimateDiff motion LoRAs produce, so GIF palettes and dithering meet realistic content.
"""
from __future__ import annotations

import numpy as np


def _photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def _affine_clip(photo: np.ndarray, size: tuple[int, int], frames: int, move) -> np.ndarray:
    """Render `frames` views of `photo`; move(t) -> (dx, dy, scale, angle_deg) at t in [0, 1]."""
    import cv2

    h, w = size
    ph, pw = photo.shape[:2]
    out = np.empty((frames, h, w, 3), np.uint8)
    base = min(ph / h, pw / w) * 0.8  # source pixels per output pixel, leaving room to move
    for i in range(frames):
        dx, dy, scale, angle = move(i / max(frames - 1, 1))
        s = 1.0 / (base * scale)
        m = cv2.getRotationMatrix2D((pw / 2 + dx, ph / 2 + dy), angle, s)
        m[0, 2] += w / 2 - (pw / 2 + dx)
        m[1, 2] += h / 2 - (ph / 2 + dy)
        out[i] = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out


def _cinemagraph(photo: np.ndarray, size: tuple[int, int], frames: int) -> np.ndarray:
    """A still frame with a gentle wave in one band: the static-background look of many AI loops."""
    import cv2

    still = _affine_clip(photo, size, 1, lambda t: (0, 0, 1.0, 0))[0]
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    band = np.exp(-((yy - h * 0.65) / (h * 0.12)) ** 2)
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        mx = xx + 3.0 * band * np.sin(yy / 7.0 + phase)
        my = yy + 1.5 * band * np.cos(xx / 11.0 + phase)
        out[i] = cv2.remap(still, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out


def corpus(scale: float = 1.0, frames: int | None = None) -> dict[str, np.ndarray]:
    """Named clips (uint8 F×H×W×3). scale shrinks sizes; frames overrides clip lengths (quick runs)."""

    def sz(h, w):
        return (max(16, int(h * scale) // 2 * 2), max(16, int(w * scale) // 2 * 2))

    def n(k):
        return frames or k

    return {
        "astronaut-pan": _affine_clip(_photo("astronaut"), sz(256, 320), n(24),
                                      lambda t: (-60 + 120 * t, 10 * t, 1.0, 0)),
        "coffee-zoom": _affine_clip(_photo("coffee"), sz(288, 384), n(32),
                                    lambda t: (0, 0, 1.0 + 0.35 * t, 0)),
        "chelsea-rotate": _affine_clip(_photo("chelsea"), sz(256, 352), n(16),
                                       lambda t: (10 * t, 0, 1.05 + 0.1 * t, 6 * np.sin(np.pi * t))),
        "rocket-cinemagraph": _cinemagraph(_photo("rocket"), sz(256, 384), n(48)),
    }
