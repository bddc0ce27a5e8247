"""Animated WebP through Pillow (libwebp): lossy by default, exact millisecond delays, EXIF metadata."""
from __future__ import annotations

import json

from animate.atomic import atomic_file
from animate.encode.base import Clip, Option, boolean, check_metadata, encoder, integer, shown
from animate.errors import EncodeError

EXIF_IMAGE_DESCRIPTION = 0x010E  # where read_metadata looks for our JSON
MAX_SIDE = 16383  # libwebp's limit on width and height


def ms_delays(n: int, fps: float) -> list[int]:
    ends = [round((i + 1) * 1000 / fps) for i in range(n)]
    return [b - a for a, b in zip([0] + ends[:-1], ends)]


def ascii_metadata(fmt: str, key: str, value) -> str | None:
    """Rule: EXIF text is ASCII, so JSON is re-dumped with \\u escapes (same data, different bytes)."""
    metadata = check_metadata(fmt, value)
    if not metadata or metadata.isascii():
        return metadata
    try:
        return json.dumps(json.loads(metadata), separators=(",", ":"), ensure_ascii=True)
    except ValueError:
        raise EncodeError(f"option 'metadata' must be ASCII text or JSON (EXIF holds ASCII only), got "
                          f"{shown(metadata)}", where=f"outputs.{fmt}.{key}") from None


def check_webp_clip(opts: dict, clip: Clip) -> None:
    """libwebp refuses frames wider or taller than 16383 pixels."""
    if max(clip.width, clip.height) > MAX_SIDE:
        raise EncodeError(f"WebP frames are at most {MAX_SIDE}×{MAX_SIDE} pixels, got {clip.width}×{clip.height}",
                          where=f"outputs.webp.{'width' if clip.width > MAX_SIDE else 'height'}",
                          hint="render smaller or use an mp4/png output")


@encoder("webp", ".webp", options={"quality": Option(90, integer(0, 100)), "lossless": Option(False, boolean),
                                   "loop": Option(0, integer(0, 65535)), "pingpong": Option(False, boolean),
                                   "metadata": Option(None, ascii_metadata)},
         clip_rule=check_webp_clip)
def write(frames, path, *, fps, quality, lossless, loop, pingpong, metadata):
    """Animated WebP that loops `loop` times (0 = forever); `pingpong` plays forward then back."""
    from PIL import Image

    if pingpong and len(frames) > 2:
        frames = list(frames) + list(frames[-2:0:-1])  # there and back, without doubled ends (as the GIF does)
    images = [Image.fromarray(f) for f in frames]
    extra = {}
    if metadata:
        exif = Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = metadata  # already ASCII (ascii_metadata)
        extra["exif"] = exif.tobytes()
    with atomic_file(path) as tmp:
        images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:],
                       duration=ms_delays(len(frames), fps), loop=loop, quality=quality,
                       lossless=lossless, method=4, minimize_size=False, **extra)
    return path, {}
