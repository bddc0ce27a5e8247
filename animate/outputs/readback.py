"""Read frames back for re-encoding: a PNG folder, any ffmpeg-readable video or GIF, or a clip sidecar."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from animate.errors import EncodeError
from animate.encode.metadata import read_metadata
from animate.outputs.framestore import FrameStore

DEFAULT_FPS = 8.0  # design default, used when a frame folder carries no fps
# Lossless first: re-encoding from them loses nothing; then the best lossy ones.
SIDECAR_PREFERENCE = ("ffv1", "png", "prores", "webm", "mp4", "webp", "gif")


def read_frames(source) -> tuple[np.ndarray, float]:
    """(frames uint8 F×H×W×3, fps) from a frame folder, a video/GIF file or a clip sidecar JSON."""
    path = Path(source)
    if not path.exists():
        raise EncodeError(f"input {str(path)!r} does not exist", where="encode INPUT")
    if path.is_dir():
        return _read_folder(path)
    if path.suffix.lower() == ".json":
        return _read_sidecar(path)
    if path.suffix.lower() in (".gif", ".webp"):
        return _read_animated_image(path)
    return _read_video(path)


def _fps_from_metadata(text: str | None) -> float | None:
    try:
        value = json.loads(text).get("fps") if text else None
        return float(value) if value else None
    except (ValueError, AttributeError, TypeError):
        return None


def _read_folder(path: Path) -> tuple[np.ndarray, float]:
    import cv2  # media library: loaded on use

    files = sorted(path.glob("*.png"))
    if not files:
        raise EncodeError(f"folder {str(path)!r} holds no .png frames", where="encode INPUT")
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise EncodeError(f"cannot read frame {str(f)!r}", where="encode INPUT")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        if img.dtype == np.uint16:  # our 16-bit frames hold v×257: rounding gives v back exactly
            img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        frames.append(img)
    return _stack(frames, path), _fps_from_metadata(read_metadata(path)) or DEFAULT_FPS


def _read_animated_image(path: Path) -> tuple[np.ndarray, float]:
    from PIL import Image  # media library: loaded on use

    frames, ms = [], []
    try:
        with Image.open(path) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                frames.append(np.asarray(im.convert("RGB")))
                ms.append(im.info.get("duration") or 100)
    except Image.DecompressionBombError as exc:  # a header that claims far more pixels than the file holds
        raise EncodeError(f"input {str(path)!r} is too large to decode safely ({exc})", where="encode INPUT",
                          hint="resize it first") from None
    except OSError as exc:
        raise EncodeError(f"cannot read {str(path)!r} ({exc})", where="encode INPUT") from None
    return _stack(frames, path), 1000.0 * len(ms) / sum(ms)


def _read_video(path: Path) -> tuple[np.ndarray, float]:
    import av  # media library: loaded on use

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.FFmpegError, IndexError) as exc:
        raise EncodeError(f"cannot read video {str(path)!r}: {exc}", where="encode INPUT") from None
    return _stack(frames, path), float(rate) if rate else DEFAULT_FPS


# Output options that change the picture (platform fitting, letterbox bars, interpolated frames): such an
# output is never a source for re-encoding.
FITTING_OPTIONS = ("target", "max_bytes", "interpolate", "every")


def _read_sidecar(path: Path) -> tuple[np.ndarray, float]:
    """A clip's lossless frames from the frame store the sidecar points to; else its best unfitted output."""
    try:
        record = json.loads(path.read_text())
        outputs = record["outputs"]
        spec = record.get("spec") or {}
        options = spec.get("outputs") or {}
        # A hand-edited record: every path a string, every option set a mapping, or it is not ours.
        if not all(isinstance(v, str) for v in outputs.values()) or \
                not all(isinstance(v, dict) or v is None for v in options.values()) or \
                isinstance(spec.get("fps"), (bool, str)):
            raise TypeError("not a sidecar")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EncodeError(f"{str(path)!r} is not a clip sidecar (no 'outputs' mapping)", where="encode INPUT",
                          hint="pass the clip's .json written beside its outputs, a video or a frame folder")
    fps = spec.get("fps")
    if isinstance(record.get("frames"), str):
        store_file = (path.parent / record["frames"]).resolve()
        key = store_file.stem
        try:
            frames = FrameStore(store_file.parent.parent).load(key)
        except ValueError:  # not a render key: a hand-edited sidecar
            frames = None
        if frames is not None:
            return frames, float(fps or DEFAULT_FPS)
    for fmt in sorted(outputs, key=lambda f: SIDECAR_PREFERENCE.index(f) if f in SIDECAR_PREFERENCE else 99):
        fitted = any((options.get(fmt) or {}).get(k) not in (None, 1) for k in FITTING_OPTIONS)
        candidate = path.parent / outputs[fmt]
        if fmt != "sheet" and not fitted and candidate.exists():
            frames, file_fps = read_frames(candidate)
            return frames, float(fps or file_fps)
    raise EncodeError(f"neither the stored frames nor an unfitted output of {str(path)!r} exist",
                      where="encode INPUT", hint="re-render the clip or pass a video/frame folder")


def _stack(frames: list, path: Path) -> np.ndarray:
    if not frames:
        raise EncodeError(f"{str(path)!r} holds no frames", where="encode INPUT")
    if len({f.shape for f in frames}) > 1:
        raise EncodeError(f"frames in {str(path)!r} differ in size", where="encode INPUT")
    return np.ascontiguousarray(np.stack(frames).astype(np.uint8))
