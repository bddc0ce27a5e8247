"""Test videos written with PyAV: each frame a flat grey whose level names its index (lossless FFV1), at a
constant rate or at explicit (variable) timestamps."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

LEVEL_STEP = 6  # frame k is grey level k * LEVEL_STEP (+ a gradient), so a decoded frame names its index


def frame_image(k: int, width: int, height: int) -> np.ndarray:
    image = np.full((height, width, 3), (k * LEVEL_STEP) % 256, np.uint8)
    image[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]  # content to stylize
    return image


def frame_index(image: np.ndarray) -> int:
    """The index frame_image drew (from the red channel's level)."""
    return int(round(float(np.median(image[:, :, 0])) / LEVEL_STEP))


def write_video(path: Path, times: list[float], *, width: int = 40, height: int = 24, codec: str = "ffv1",
                rate: int = 30, time_base: Fraction = Fraction(1, 1000)) -> Path:
    """Frame k at presentation time times[k] (seconds), as written pts (variable frame rate when uneven)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base  # else pts are rounded to 1/rate
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_image(k, width, height), format="rgb24")
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def constant_rate(count: int, fps: float) -> list[float]:
    return [k / fps for k in range(count)]
