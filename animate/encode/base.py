"""What every encoder shares: the registry, option checking, frame checks and the ffmpeg pipe."""
from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from animate.errors import EncodeError

# Options every format accepts; format modules add their own.
COMMON_OPTIONS: dict[str, Any] = {"metadata": None, "interpolate": 1}


@dataclass(frozen=True)
class Format:
    """One registered output format: its writer, file extension and accepted options with defaults."""

    name: str
    ext: str  # ".gif"; "" for a frame folder
    folder: bool
    options: dict[str, Any]
    run: Callable[..., tuple[Path, dict]] = field(repr=False)


FORMATS: dict[str, Format] = {}


def encoder(name: str, ext: str, *, folder: bool = False, options: dict[str, Any] | None = None):
    """Register `fn(frames, path, *, fps, **options) -> (Path, report)` as format `name`.

    The registered runner checks options and frames and applies interpolation, so each format module
    only encodes.
    """
    allowed = {**COMMON_OPTIONS, **(options or {})}

    def deco(fn):
        @functools.wraps(fn)
        def run(frames, path, *, fps, **opts) -> tuple[Path, dict]:
            opts = check_options(name, opts, allowed)
            frames = check_frames(frames, name)
            fps = check_fps(fps, name)
            factor = check_int(name, "interpolate", opts.pop("interpolate"), 1, 8)
            report: dict = {}
            if factor > 1:
                from animate.encode.interpolate import interpolate

                frames, fps = interpolate(frames, factor), fps * factor
                report["interpolated"] = factor
            out, more = fn(frames, Path(path), fps=fps, **opts)
            report.update(more)
            report.setdefault("frames", len(frames))
            report.setdefault("fps", fps)
            report["bytes"] = path_bytes(out)
            return out, report

        FORMATS[name] = Format(name, ext, folder, allowed, run)
        return fn

    return deco


def check_options(fmt: str, given: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """Merge `given` over defaults; an unknown option is an EncodeError listing the valid ones."""
    for key in given:
        if key not in allowed:
            raise EncodeError(f"unknown option {key!r} for format {fmt!r}", where=f"outputs.{fmt}",
                              hint=f"valid options: {', '.join(sorted(allowed))}")
    return {**allowed, **{k: v for k, v in given.items()}}


def check_frames(frames, fmt: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise EncodeError(f"frames must be uint8 F×H×W×3 with F ≥ 1, got {arr.dtype} {arr.shape}",
                          where=f"encode {fmt}")
    return np.ascontiguousarray(arr)


def check_fps(fps, fmt: str) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 < value <= 240):
        raise EncodeError(f"fps must be a number in (0, 240], got {fps!r}", where=f"encode {fmt}")
    return value


def check_int(fmt: str, key: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise EncodeError(f"option {key!r} must be an integer in [{lo}, {hi}], got {value!r}",
                          where=f"outputs.{fmt}.{key}")
    return int(value)


def check_choice(fmt: str, key: str, value, choices) -> Any:
    if value not in choices:
        raise EncodeError(f"option {key!r} must be one of {', '.join(map(str, choices))}, got {value!r}",
                          where=f"outputs.{fmt}.{key}")
    return value


def check_number(fmt: str, key: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not lo <= value <= hi:
        raise EncodeError(f"option {key!r} must be a number in [{lo}, {hi}], got {value!r}",
                          where=f"outputs.{fmt}.{key}")
    return float(value)


def path_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def fps_fraction(fps: float) -> Fraction:
    # 29.97 → 30000/1001; 12.5 → 25/2: exact rational rates keep ffmpeg's timestamps exact.
    return Fraction(fps).limit_denominator(1001)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(frames: np.ndarray, fps: float, out_args: list[str], dest: Path, fmt: str) -> None:
    """Pipe raw rgb24 `frames` into the bundled ffmpeg and write `dest` with `out_args`."""
    f, h, w, _ = frames.shape
    rate = fps_fraction(fps)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}",
           "-i", "-", *out_args, str(dest)]
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise EncodeError(f"ffmpeg failed writing {fmt}: {' | '.join(tail) or proc.returncode}",
                          where=f"encode {fmt}")


def pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad (never stretch) to even width and height, repeating the edge so no black line appears."""
    _, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


# scale sets the RGB→YUV matrix and range; setparams tags all three colour fields (output options alone
# tagged only the matrix with the bundled ffmpeg — see facts/encoders.md).
BT709_TV = ("scale=out_color_matrix=bt709:out_range=tv,"
            "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv")


def metadata_args(metadata: str | None) -> list[str]:
    return ["-metadata", f"comment={metadata}"] if metadata else []


def check_metadata(fmt: str, metadata) -> str | None:
    if metadata is not None and not isinstance(metadata, str):
        raise EncodeError(f"option 'metadata' must be a string (compact JSON), got {type(metadata).__name__}",
                          where=f"outputs.{fmt}.metadata")
    return metadata


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize every frame to width×height with area averaging (sharp and alias-free when shrinking)."""
    import cv2

    _, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    interp = cv2.INTER_AREA if width <= w else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in frames])


def fit_inside(width: int, height: int, max_w: int | None, max_h: int | None, scale: float = 1.0,
               even: bool = False) -> tuple[int, int]:
    """The size of width×height scaled by `scale` and shrunk (aspect kept) to fit max_w×max_h."""
    s = scale
    if max_w:
        s = min(s, max_w / width)
    if max_h:
        s = min(s, max_h / height)
    s = min(s, 1.0)
    w, h = max(1, round(width * s)), max(1, round(height * s))
    if even:
        w, h = max(2, w // 2 * 2), max(2, h // 2 * 2)
    return w, h
