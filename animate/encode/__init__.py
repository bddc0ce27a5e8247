"""Encoders: one module per format family, one signature for all, chosen by name from a registry.

    write(frames, path, *, fps, **options) -> Path      frames: uint8 F×H×W×3

`encode_with_report` also returns what was done to fit a target (quality, size, fps, bytes).
`check_output` runs every check a writer makes on its options, knowing only the clip's fps, frame count and
size, so a bad value is refused before anything renders; the writers run the same checks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from animate.encode import frames as _frames  # noqa: F401  (registers png, sheet)
from animate.encode import gif as _gif  # noqa: F401
from animate.encode import video as _video  # noqa: F401  (mp4, webm, prores, ffv1)
from animate.encode import webp as _webp  # noqa: F401
from animate.encode.base import FORMATS, Format, did_you_mean
from animate.encode.metadata import read_metadata
from animate.errors import EncodeError


def _writer(fmt: Format) -> Callable[..., Path]:
    def write(frames, path, *, fps, **options) -> Path:
        return fmt.run(frames, path, fps=fps, **options)[0]

    write.__name__ = f"write_{fmt.name}"
    write.__doc__ = fmt.run.__doc__
    return write


ENCODERS: dict[str, Callable[..., Path]] = {name: _writer(f) for name, f in FORMATS.items()}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise EncodeError(f"unknown format {name!r}", where=f"outputs.{name}",
                          hint=f"{did_you_mean(name, FORMATS)}valid formats: {', '.join(sorted(FORMATS))}") from None


def check_output(fmt: str, options: dict | None, *, fps: float, frames: int, width: int, height: int) -> None:
    """Refuse, as the writer would, any option of output `fmt` that a clip of `frames` frames of width×height
    at `fps` cannot be encoded with: unknown format or key, each value, and limits such as GIF's 50 fps or a
    target's fps and duration. Raises EncodeError (where: outputs.<fmt>.<key>); needs no pixels."""
    get_format(fmt).check(options, fps=fps, frames=frames, width=width, height=height)


def extension(name: str) -> tuple[str, bool]:
    """(file extension, is_folder) of a format: ("gif" → (".gif", False), "png" → ("", True))."""
    fmt = get_format(name)
    return fmt.ext, fmt.folder


def output_path(name: str, path) -> Path:
    """`path` with the format's extension added unless it already ends with it (folders: unchanged)."""
    fmt, path = get_format(name), Path(path)
    if fmt.folder or path.suffix.lower() == fmt.ext:
        return path
    return path.with_name(path.name + fmt.ext)


def encode_with_report(fmt: str, frames, path, *, fps, **options) -> tuple[Path, dict]:
    """Encode `frames` as `fmt` at `path` (extension added if missing); return (path, report)."""
    out, report = get_format(fmt).run(frames, output_path(fmt, path), fps=fps, **options)
    report["format"] = fmt
    return out, report


def encode(fmt: str, frames, path, *, fps, **options) -> Path:
    """Encode `frames` as `fmt` at `path` (extension added if missing); return the written path."""
    return encode_with_report(fmt, frames, path, fps=fps, **options)[0]


__all__ = ["ENCODERS", "FORMATS", "check_output", "encode", "encode_with_report", "extension", "output_path",
           "read_metadata", "get_format"]
