"""Animated WebP through Pillow (libwebp): lossy by default, exact millisecond delays, EXIF metadata."""
from __future__ import annotations

import json

from animate.atomic import atomic_file
from animate.encode.base import check_int, check_metadata, encoder
from animate.errors import EncodeError

EXIF_IMAGE_DESCRIPTION = 0x010E  # where read_metadata looks for our JSON


def ms_delays(n: int, fps: float) -> list[int]:
    ends = [round((i + 1) * 1000 / fps) for i in range(n)]
    return [b - a for a, b in zip([0] + ends[:-1], ends)]


def _ascii(metadata: str) -> str:
    """EXIF text is ASCII: JSON is re-dumped with \\u escapes (same data, different bytes)."""
    if metadata.isascii():
        return metadata
    try:
        return json.dumps(json.loads(metadata), separators=(",", ":"), ensure_ascii=True)
    except ValueError:
        raise EncodeError("webp metadata must be ASCII or JSON", where="outputs.webp.metadata") from None


@encoder("webp", ".webp", options={"quality": 90, "lossless": False, "loop": 0})
def write(frames, path, *, fps, quality, lossless, loop, metadata):
    """Animated WebP that loops `loop` times (0 = forever)."""
    from PIL import Image

    quality = check_int("webp", "quality", quality, 0, 100)
    loop = check_int("webp", "loop", loop, 0, 65535)
    metadata = check_metadata("webp", metadata)
    images = [Image.fromarray(f) for f in frames]
    extra = {}
    if metadata:
        exif = Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = _ascii(metadata)
        extra["exif"] = exif.tobytes()
    with atomic_file(path) as tmp:
        images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:],
                       duration=ms_delays(len(frames), fps), loop=loop, quality=quality,
                       lossless=bool(lossless), method=4, minimize_size=False, **extra)
    return path, {}
