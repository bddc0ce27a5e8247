"""What every encoder shares: the registry, option rules, frame checks and the ffmpeg pipe.

Each option is registered with a rule that checks a value and returns it as the writer takes it; a format may
add a clip rule for limits that depend on fps, frame count or size. `Format.check` runs them all without a
pixel, and the registered runner calls the same check before it encodes, so an up-front check and the writer
can never disagree.
"""
from __future__ import annotations

import difflib
import functools
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from animate.errors import EncodeError
from animate.encode.interpolate import interpolate

# A rule takes (format, option key, value) and returns the value as the writer uses it, or raises EncodeError.
Rule = Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class Option:
    """One encoder option: its default and the rule every value must pass."""

    default: Any
    rule: Rule


@dataclass(frozen=True)
class Clip:
    """What the checks know before any pixel exists: the clip as the format encodes it (after `interpolate`)."""

    fps: float
    frames: int
    width: int
    height: int
    interpolate: int = 1


def rate_text(fps: float, interpolate: int = 1) -> str:
    """The rate as a message shows it: 60, or 60 (30 fps × interpolate 2) when interpolation produced it."""
    return f"{fps:g}" if interpolate == 1 else f"{fps:g} ({fps / interpolate:g} fps × interpolate {interpolate})"


@dataclass(frozen=True)
class Format:
    """One registered output format: its writer, file extension, accepted options with defaults and rules."""

    name: str
    ext: str  # ".gif"; "" for a frame folder
    folder: bool
    options: dict[str, Any]  # key → default
    rules: dict[str, Rule] = field(repr=False)
    clip_rule: Callable[[dict[str, Any], Clip], None] | None = field(repr=False)
    run: Callable[..., tuple[Path, dict]] = field(repr=False)

    def check(self, given: dict[str, Any] | None, *, fps, frames: int, width: int,
              height: int) -> tuple[dict[str, Any], Clip]:
        """Every check of `given` options for a clip of this shape, without pixels: unknown keys, each value,
        then the clip's limits. Returns (options with defaults, as the writer takes them; the clip as encoded)."""
        opts = check_options(self.name, given or {}, self.options)
        fps = check_fps(fps, self.name)
        check_clip_shape(self.name, frames, width, height)
        opts = {key: self.rules[key](self.name, key, value) for key, value in opts.items()}
        factor = opts["interpolate"]
        clip = Clip(fps * factor, int(frames) * factor, int(width), int(height), factor)
        if self.clip_rule:
            self.clip_rule(opts, clip)
        return opts, clip


FORMATS: dict[str, Format] = {}


def encoder(name: str, ext: str, *, folder: bool = False, options: dict[str, Option] | None = None,
            clip_rule: Callable[[dict[str, Any], Clip], None] | None = None):
    """Register `fn(frames, path, *, fps, **options) -> (Path, report)` as format `name`.

    The registered runner checks options (with `Format.check`) and frames and applies interpolation, so each
    format module only encodes, and receives its options already checked.
    """
    allowed = {**COMMON_OPTIONS, **(options or {})}

    def deco(fn):
        @functools.wraps(fn)
        def run(frames, path, *, fps, **opts) -> tuple[Path, dict]:
            frames = check_frames(frames, name)
            f, h, w, _ = frames.shape
            opts, clip = registered.check(opts, fps=fps, frames=f, width=w, height=h)
            factor = opts.pop("interpolate")
            report: dict = {}
            if factor > 1:
                frames = interpolate(frames, factor)
                report["interpolated"] = factor
            fps = clip.fps
            out, more = fn(frames, Path(path), fps=fps, **opts)
            report.update(more)
            report.setdefault("frames", len(frames))
            report.setdefault("fps", fps)
            report["bytes"] = path_bytes(out)
            return out, report

        registered = Format(name, ext, folder, {k: o.default for k, o in allowed.items()},
                            {k: o.rule for k, o in allowed.items()}, clip_rule, run)
        FORMATS[name] = registered
        return fn

    return deco


def did_you_mean(value, names) -> str:
    """A hint prefix naming the one of `names` closest to `value` (empty when none is close)."""
    close = difflib.get_close_matches(value.lower(), list(names), n=1) if isinstance(value, str) else []
    return f"did you mean `{close[0]}`? " if close else ""


def check_options(fmt: str, given: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """Merge `given` over defaults; an unknown option is an EncodeError listing the valid ones."""
    for key in given:
        if key not in allowed:
            raise EncodeError(f"unknown option {key!r} for format {fmt!r}", where=f"outputs.{fmt}.{key}",
                              hint=f"{did_you_mean(key, allowed)}valid options: {', '.join(sorted(allowed))}")
    return {**allowed, **given}


def check_frames(frames, fmt: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise EncodeError(f"frames must be uint8 F×H×W×3 with F ≥ 1, got {arr.dtype} {arr.shape}",
                          where=f"encode {fmt}")
    return np.ascontiguousarray(arr)


def check_clip_shape(fmt: str, frames, width, height) -> None:
    def count(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1

    if not (count(frames) and count(width) and count(height)):
        raise EncodeError(f"a clip needs at least 1 frame of at least 1×1 pixels, got {frames!r} frames "
                          f"of {width!r}×{height!r}", where=f"encode {fmt}")


def check_fps(fps, fmt: str) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 < value <= 240):
        raise EncodeError(f"fps must be a number in (0, 240], got {fps!r}", where=f"encode {fmt}")
    return value


def shown(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: a message names the value without quoting a whole JSON blob."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_int(fmt: str, key: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise EncodeError(f"option {key!r} must be an integer in [{lo}, {hi}], got {shown(value)}",
                          where=f"outputs.{fmt}.{key}")
    return int(value)


def check_choice(fmt: str, key: str, value, choices) -> Any:
    if value not in choices:
        raise EncodeError(f"option {key!r} must be one of {', '.join(map(str, choices))}, got {shown(value)}",
                          where=f"outputs.{fmt}.{key}",
                          hint=did_you_mean(value, [c for c in choices if isinstance(c, str)]).strip() or None)
    return value


def check_number(fmt: str, key: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not lo <= value <= hi:
        raise EncodeError(f"option {key!r} must be a number in [{lo}, {hi}], got {shown(value)}",
                          where=f"outputs.{fmt}.{key}")
    return float(value)


def check_bool(fmt: str, key: str, value) -> bool:
    # A string such as "no" is truthy: refusing it beats silently doing the opposite of what was meant.
    if not isinstance(value, (bool, np.bool_)):
        raise EncodeError(f"option {key!r} must be true or false, got {shown(value)}", where=f"outputs.{fmt}.{key}")
    return bool(value)


def check_metadata(fmt: str, metadata) -> str | None:
    if metadata is not None and not isinstance(metadata, str):
        raise EncodeError(f"option 'metadata' must be a string (compact JSON), got {type(metadata).__name__} "
                          f"{shown(metadata)}", where=f"outputs.{fmt}.metadata")
    return metadata


# --- rule builders: the values of Option(default, rule) ---

def integer(lo: int, hi: int) -> Rule:
    """Rule: an integer in [lo, hi]."""
    return lambda fmt, key, value: check_int(fmt, key, value, lo, hi)


def choice(*choices) -> Rule:
    """Rule: one of `choices`."""
    return lambda fmt, key, value: check_choice(fmt, key, value, choices)


def optional(rule: Rule) -> Rule:
    """Rule: None, or a value that passes `rule`."""
    return lambda fmt, key, value: None if value is None else rule(fmt, key, value)


def boolean(fmt: str, key: str, value) -> bool:
    """Rule: true or false."""
    return check_bool(fmt, key, value)


def metadata_text(fmt: str, key: str, value) -> str | None:
    """Rule: None or a string (what the runner embeds: the clip spec as compact JSON)."""
    return check_metadata(fmt, value)


MAX_BYTES = optional(integer(1, 1 << 42))

# Options every format accepts; format modules add their own.
COMMON_OPTIONS: dict[str, Option] = {"metadata": Option(None, metadata_text), "interpolate": Option(1, integer(1, 8))}


def path_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def fps_fraction(fps: float) -> Fraction:
    # 29.97 → 30000/1001; 12.5 → 25/2: exact rational rates keep ffmpeg's timestamps exact.
    return Fraction(fps).limit_denominator(1001)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # media library: loaded on use

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(frames: np.ndarray, fps: float, out_args: list[str], dest: Path, fmt: str) -> None:
    """Pipe raw rgb24 `frames` into the bundled ffmpeg and write `dest` with `out_args`."""
    f, h, w, _ = frames.shape
    rate = fps_fraction(fps)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}",
           "-i", "-", *out_args, str(dest)]
    # Its own session: a terminal's Ctrl-C goes to the runner, which still finishes the clips already rendered.
    proc = subprocess.run(cmd, input=raw_bytes(frames), capture_output=True, start_new_session=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise EncodeError(f"ffmpeg failed writing {fmt}: {' | '.join(tail) or proc.returncode}",
                          where=f"encode {fmt}")


def raw_bytes(frames: np.ndarray) -> memoryview:
    """The frames' bytes for a pipe, without a copy (`tobytes()` would copy the whole clip, once per encoder)."""
    return memoryview(np.ascontiguousarray(frames, dtype=np.uint8)).cast("B")


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


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize every frame to width×height with area averaging (sharp and alias-free when shrinking)."""
    import cv2  # media library: loaded on use

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
