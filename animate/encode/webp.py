"""Animated WebP through Pillow (libwebp): lossy by default, exact millisecond delays, EXIF metadata."""
from __future__ import annotations

import functools
import json

from animate.util.atomic import atomic_file
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
    from PIL import Image  # media library: loaded on use

    if pingpong and len(frames) > 2:
        frames = list(frames) + list(frames[-2:0:-1])  # there and back, without doubled ends (as the GIF does)
    clip = frame_sequence(frames)
    extra = {}
    if metadata:
        exif = Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = metadata  # already ASCII (ascii_metadata)
        extra["exif"] = exif.tobytes()
    with atomic_file(path) as tmp:
        clip.save(tmp, format="WEBP", save_all=True,
                  duration=ms_delays(len(frames), fps), loop=loop, quality=quality,
                  lossless=lossless, method=4, minimize_size=False, **extra)
    return path, {}


@functools.cache
def _frame_sequence_class():  # built on first use: Pillow is imported only when encoding
    from PIL import Image

    class FrameSequence(Image.Image):
        """A clip as one multi-frame Pillow image (Pillow's own protocol: `n_frames`, `seek`, `tell`) that makes
        frame i only when the encoder seeks it: a list of Pillow images would copy the whole clip (4 bytes a
        pixel), which for a long clip is more than its frames."""

        def __init__(self, frames):
            super().__init__()
            self._frames, self._index = frames, -1
            self.n_frames = len(frames)
            self.is_animated = self.n_frames > 1
            self.seek(0)

        def seek(self, index: int) -> None:
            if index != self._index:
                import numpy as np  # media library: loaded on use

                frame = Image.fromarray(np.ascontiguousarray(self._frames[index]))
                self.im, self._mode, self._size, self._index = frame.im, frame.mode, frame.size, index

        def tell(self) -> int:
            return self._index

    return FrameSequence


def frame_sequence(frames):
    """`frames` (uint8 F×H×W×3, or a list of frames) as one lazily made multi-frame Pillow image."""
    return _frame_sequence_class()(frames)
