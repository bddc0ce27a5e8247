"""Still images: a PNG frame folder (8- or 16-bit, for editors) and a contact-sheet PNG."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from animate.util.atomic import atomic_dir, atomic_file
from animate.encode.base import Option, choice, encoder, fit_inside, integer, optional, resize_frames

METADATA_KEY = "animate"


def frame_name(i: int) -> str:
    return f"frame_{i:05d}.png"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def itxt_chunk(key: str, text: str) -> bytes:
    # iTXt: keyword, no compression, empty language tag and translated keyword, UTF-8 text.
    return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))


def write_png16(rgb16: np.ndarray, dest: Path, metadata: str | None, level: int = 3) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one): rows filtered with 'Up', deflated with zlib."""
    h, w, _ = rgb16.shape
    rows = rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # uint8 wrap-around is exactly PNG's mod-256 filter arithmetic
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    if metadata:
        png += itxt_chunk(METADATA_KEY, metadata)
    png += _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b"")
    dest.write_bytes(png)


def _png_info(metadata: str | None):
    from PIL.PngImagePlugin import PngInfo  # media library: loaded on use

    info = PngInfo()
    if metadata:
        info.add_itxt(METADATA_KEY, metadata)
    return info


@encoder("png", "", folder=True, options={"bits": Option(8, choice(8, 16)),
                                          "compress_level": Option(1, integer(0, 9))})
def write_png(frames, path, *, fps, bits, compress_level, metadata):
    """A folder of frame_00000.png…; 16-bit frames hold v×257 so they decode back to the exact 8-bit v."""
    from PIL import Image  # media library: loaded on use

    with atomic_dir(path) as tmp:
        for i, frame in enumerate(frames):
            meta = metadata if i == 0 else None  # once is enough; readers look at the first frame
            if bits == 16:
                write_png16(frame.astype(np.uint16) * 257, tmp / frame_name(i), meta, max(compress_level, 1))
            else:
                Image.fromarray(frame).save(tmp / frame_name(i), compress_level=compress_level, pnginfo=_png_info(meta))
    return path, {"bits": bits}


def sheet_layout(n: int, w: int, h: int, columns: int | None, max_width: int | None,
                 gap: int) -> tuple[int, int, int]:
    """(columns, tile width, tile height) for n tiles: near-square grid, capped by columns/max_width."""
    cols = columns or max(1, int(np.ceil(np.sqrt(n * h / w))))
    cols = min(cols, n)
    tw, th = w, h
    if max_width and cols * w + (cols - 1) * gap > max_width:
        tw, th = fit_inside(w, h, max(1, (max_width - (cols - 1) * gap) // cols), None)
    return cols, tw, th


@encoder("sheet", ".png", options={"columns": Option(None, optional(integer(1, 1000))),
                                   "max_width": Option(None, optional(integer(16, 1 << 16))),
                                   "gap": Option(2, integer(0, 64)), "every": Option(1, integer(1, 10_000))})
def write_sheet(frames, path, *, fps, columns, max_width, gap, every, metadata):
    """A contact sheet: every `every`-th frame in a grid of at most `columns` columns, ≤ max_width px."""
    from PIL import Image  # media library: loaded on use

    frames = frames[::every]
    n, h, w, _ = frames.shape
    cols, tw, th = sheet_layout(n, w, h, columns, max_width, gap)
    tiles = resize_frames(frames, tw, th)
    rows = -(-n // cols)
    canvas = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tile
    with atomic_file(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG", optimize=False, compress_level=6,
                                     pnginfo=_png_info(metadata))
    return path, {"columns": cols, "tile": [tw, th], "frames": n}
