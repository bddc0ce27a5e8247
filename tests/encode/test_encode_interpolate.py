"""Optical-flow interpolation: doubles frames, and on a pan it beats plain blending on held-out frames."""
from __future__ import annotations

import numpy as np

from animate.encode.interpolate import between, interpolate
from encode_helpers import psnr


def _pan(frames: int, step: float, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth random texture panned `step` px per frame (sub-pixel exact via cv2 warpAffine)."""
    import cv2

    rng = np.random.default_rng(3)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w * 3, 3)).astype(np.float32), (0, 0), 2.0)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    out = []
    for i in range(frames):
        m = np.float32([[1, 0, -i * step - w / 2], [0, 1, 0]])
        out.append(cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)


def test_doubles_frame_count_and_keeps_originals():
    clip = _pan(5, 3.0)
    out = interpolate(clip, 2)
    assert out.shape == (10,) + clip.shape[1:] and out.dtype == np.uint8
    np.testing.assert_array_equal(out[::2], clip)
    np.testing.assert_array_equal(out[-1], clip[-1])  # last frame held: duration unchanged


def test_beats_blending_on_held_out_pan_frames():
    full = _pan(9, 4.0)  # 4 px/frame; keep even frames, predict the odd ones
    kept = full[::2]
    predicted = interpolate(kept, 2)[1:-1:2]
    held_out = full[1::2]
    blend = ((kept[:-1].astype(np.float32) + kept[1:]) / 2 + 0.5).astype(np.uint8)
    inner = (slice(None), slice(4, -4), slice(12, -12))  # borders have no source pixels to warp from
    flow_psnr, blend_psnr = psnr(predicted[inner], held_out[inner]), psnr(blend[inner], held_out[inner])
    assert flow_psnr > blend_psnr + 5, (flow_psnr, blend_psnr)


def test_static_and_triple():
    still = np.full((2, 16, 16, 3), 77, np.uint8)
    assert (between(still[0], still[1], [0.5])[0] == 77).all()
    assert len(interpolate(_pan(3, 2.0), 3)) == 9
