"""Shared helpers for the encoder tests: small deterministic clips and independent decoders."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def moving_clip(frames: int = 6, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a textured square moving 2 px per frame: motion, flat areas and edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / (w + h)], -1)
    tex = rng.integers(0, 256, (12, 12, 3))
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        img = base.copy()
        x0, y0 = (2 * i) % max(w - 12, 1), h // 4
        img[y0:y0 + 12, x0:x0 + 12] = tex
        out[i] = img
    return out


def decode_av(path) -> tuple[list[np.ndarray], object]:
    """Every frame (rgb24) and the video stream, decoded by PyAV (FFmpeg's own decoders)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        info = {
            "codec": stream.codec_context.name, "profile": stream.codec_context.profile,
            "pix_fmt": stream.codec_context.format.name if stream.codec_context.format else None,
            "width": stream.codec_context.width, "height": stream.codec_context.height,
            "fps": float(stream.average_rate or stream.guessed_rate),
            "primaries": int(stream.codec_context.color_primaries), "trc": int(stream.codec_context.color_trc),
            "matrix": int(stream.codec_context.colorspace), "range": int(stream.codec_context.color_range),
            "metadata": {k.lower(): v for k, v in container.metadata.items()},
            "duration": float(container.duration / 1_000_000) if container.duration else None,
        }
    return frames, info


def top_level_atoms(path) -> list[str]:
    """Names of the top-level boxes of an MP4/MOV, in file order."""
    data, pos, names = Path(path).read_bytes(), 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        names.append(kind.decode("latin-1"))
        pos += size
    return names


def decode_gif(path) -> tuple[np.ndarray, list[int], dict]:
    from PIL import Image

    frames, durations = [], []
    with Image.open(path) as im:
        info = dict(im.info)
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return np.stack(frames), durations, info


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))
