"""Read frames from image folders and video files (PyAV), only the frames a clip needs."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")


def natural_key(path: Path):
    """Sort frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """The image files of a folder in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=natural_key)


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError as exc:  # a header that claims far more pixels than it holds
        raise PoseSourceError(f"pose source {path}: image too large to decode safely ({exc}); resize it") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise PoseSourceError(f"pose source {path}: cannot read image ({exc}); re-save it as PNG") from None


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
        if not container.streams.video:
            container.close()
            raise PoseSourceError(f"pose source {path}: has no video stream; give a video file")
        return container
    except PoseSourceError:
        raise
    except Exception as exc:  # PyAV raises many types (InvalidDataError, FileNotFoundError, ...)
        raise PoseSourceError(
            f"pose source {path}: cannot read video ({type(exc).__name__}: {exc}); "
            f"check the file, or re-encode it with `ffmpeg -i IN -c:v libx264 OUT.mp4`") from None


def video_info(path: Path) -> VideoInfo:
    """Frame count, fps and size of a video (counts packets when the container does not say)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
        count = stream.frames
        if not count:
            count = sum(1 for packet in container.demux(stream) if packet.size)
        if not fps:
            raise PoseSourceError(f"pose source {path}: the video has no frame rate; re-encode it with one")
        return VideoInfo(int(count), fps, stream.codec_context.width, stream.codec_context.height)
    finally:
        container.close()


def read_video(path: Path, indices=None, *, max_side: int | None = None,
               missing_ok: bool = False) -> list[np.ndarray]:
    """Decode RGB frames (only `indices` if given, in that order, repeats allowed), optionally downscaled.
    With `missing_ok`, wanted frames the stream does not have (its header overstated the count) are None."""
    import cv2

    wanted = None if indices is None else set(int(i) for i in indices)
    found: dict[int, np.ndarray] = {}
    frames: list[np.ndarray] = []
    container = _open(path)
    try:
        for i, frame in enumerate(container.decode(video=0)):
            if wanted is not None and i not in wanted:
                if i > max(wanted):
                    break
                continue
            image = frame.to_ndarray(format="rgb24")
            if max_side and max(image.shape[:2]) > max_side:
                k = max_side / max(image.shape[:2])
                size = (max(1, round(image.shape[1] * k)), max(1, round(image.shape[0] * k)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if wanted is None:
                frames.append(image)
            else:
                found[i] = image
    except Exception as exc:
        raise PoseSourceError(
            f"pose source {path}: decoding failed ({type(exc).__name__}: {exc}); "
            f"re-encode it with `ffmpeg -i IN -c:v libx264 OUT.mp4`") from None
    finally:
        container.close()
    if wanted is None:
        return frames
    missing = sorted(wanted - found.keys())
    if missing and missing_ok:
        return [found.get(int(i)) for i in indices]
    if missing:
        raise PoseSourceError(
            f"pose source {path}: frame {missing[0]} could not be decoded ({len(found)} of {len(wanted)} "
            f"wanted frames read); re-encode the video or set the pose `overrun` to hold")
    return [found[int(i)] for i in indices]
