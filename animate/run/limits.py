"""Resource limits: what one script may ask of the machine, checked before a model loads or a file is written.

A script from a stranger can ask for 1024 frames at 4096x4096, a million seeds, a prompt of megabytes or a pose
"video" that is a 50 GB file or a FIFO that never ends. Each limit has a default that real scripts stay far below
and a name for `--limit NAME=VALUE` (render, check, stylize; repeatable; `none` lifts it). Every refusal is one
line naming the file, line, column and field, the value, the limit and the flag that raises it.

    pixels        frames x width x height of one render (what it holds in memory)
    total-pixels  the same summed over every render of the script
    clips         renders per script (clips x seeds)
    prompt        characters of one prompt text (a keyframe, negative, head or tail)
    script        bytes of the script file
    video         bytes of a pose or init_video video (or GIF)
    json          bytes of an OpenPose JSON file
    image         bytes of one pose, init_video frame or keyframe image
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from animate.errors import ConfigError
from animate.spec.positions import located, lookup
from animate.spec.values import loc_text
from motion.pose.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

CLI_HELP = ("Raise or lift a resource limit (repeatable): pixels, total-pixels, clips, prompt, script, video, "
            "json, image; e.g. pixels=1G, json=200MB, clips=none. See docs/limits.md.")

if TYPE_CHECKING:
    from animate.spec import ClipSpec, Script

_SUFFIX = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


@dataclass(frozen=True)
class Limits:
    """Every limit; None lifts one. Field names are the flag names with '-' as '_'."""

    pixels: int | None = 256_000_000
    total_pixels: int | None = 32_000_000_000
    clips: int | None = 1000
    prompt: int | None = 2000
    script: int | None = 2_000_000
    video: int | None = 2_000_000_000
    json: int | None = 64_000_000
    image: int | None = 32_000_000

    @classmethod
    def names(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in dataclasses.fields(cls)]

    @classmethod
    def parse(cls, items: Iterable[str] = ()) -> Limits:
        """Limits from `--limit NAME=VALUE` items (`pixels=1G`, `json=200MB`, `clips=5000`, `prompt=none`)."""
        values = {}
        for item in items:
            name, sep, text = str(item).partition("=")
            name = name.strip().lower().replace("_", "-")
            where = f"--limit {item}"
            if not sep:
                raise ConfigError("expected NAME=VALUE", where=where, hint="for example --limit pixels=512M")
            if name not in cls.names():
                close = difflib.get_close_matches(name, cls.names(), n=1)
                raise ConfigError(f"unknown limit {name!r}", where=where,
                                  hint=f"did you mean `{close[0]}`?" if close else f"limits: {', '.join(cls.names())}")
            values[name.replace("-", "_")] = parse_amount(text, where)
        return cls(**values)

    def flag(self, name: str, wanted: int) -> str:
        """The flag that lets `wanted` through (rounded up to a readable amount)."""
        return f"--limit {name}={_round_up(wanted)}"


def parse_amount(text: str, where: str) -> int | None:
    """`2G`, `512M`, `200MB`, `1500`, `1.5k` → an int (powers of 1000); `none`/`off` → None."""
    raw = text.strip().lower()
    if raw in ("none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", raw)
    if not m:
        raise ConfigError(f"{text!r} is not an amount", where=where,
                          hint="use a number with an optional k, M, G or T (powers of 1000), or none")
    value = int(float(m[1]) * _SUFFIX.get(m[2], 1))
    if value <= 0:
        raise ConfigError(f"{text!r} is not a positive amount", where=where, hint="use none to lift a limit")
    return value


def amount(n: float, unit: str = "") -> str:
    """12_300_000 → '12.3 M' (with `unit`: '12.3 MB')."""
    for suffix, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return f"{text} {suffix}{unit}"
    return f"{int(n)} {unit or ''}".rstrip() if unit else str(int(n))


def _round_up(n: int) -> str:
    for suffix, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{-(-n * 10 // size) / 10:g}{suffix}"
    return str(n)


# ------------------------------------------------------------------ the checks

def check_script_size(path: str | os.PathLike, limits: Limits) -> None:
    """The script file is within `script` bytes (checked before it is read)."""
    size = Path(path).stat().st_size
    if limits.script is not None and size > limits.script:
        raise ConfigError(f"script is {amount(size, 'B')}, more than the limit of {amount(limits.script, 'B')}",
                          where=str(path), hint=f"split it into several scripts, or {limits.flag('script', size)}")


def check_limits(specs: list[ClipSpec], limits: Limits | None = None, script: Script | None = None) -> None:
    """Every limit for every render; all refusals at once, one line each (file:line:col with `script`)."""
    limits = limits or Limits()
    at = _Locator(script)
    problems: list[str] = []
    total = 0
    for spec in specs:
        pixels = spec.frames * spec.width * spec.height
        total += pixels
        if limits.pixels is not None and pixels > limits.pixels:
            field = at.first_set(spec, ("frames", "width", "height"))
            problems.append(f"{at(spec, field)}: {spec.frames} frames of {spec.width}x{spec.height} are "
                            f"{amount(pixels)} pixels, more than the limit of {amount(limits.pixels)} per render; "
                            f"lower frames, width or height, or {limits.flag('pixels', pixels)}")
        if limits.prompt is not None:
            for field, path, text in _texts(spec):
                if len(text) > limits.prompt:
                    problems.append(f"{at(spec, field, path)}: {len(text)} characters, more than the limit of "
                                    f"{limits.prompt}; shorten it (the text encoder reads 77 tokens), or "
                                    f"{limits.flag('prompt', len(text))}")
        for field, path, source in _input_files(spec):
            problems += [f"{at(spec, field, path)}: {msg}" for msg in _input_problems(source, limits)]
    if limits.clips is not None and len(specs) > limits.clips:
        problems.append(f"{at.top('clips')}: {len(specs)} renders (clips x seeds), more than the limit of "
                        f"{limits.clips}; split the script, or {limits.flag('clips', len(specs))}")
    if limits.total_pixels is not None and total > limits.total_pixels:
        problems.append(f"{at.top('clips')}: the renders hold {amount(total)} pixels in all, more than the limit of "
                        f"{amount(limits.total_pixels)}; split the script, or {limits.flag('total-pixels', total)}")
    if problems:
        lines = list(dict.fromkeys(problems))
        raise ConfigError(lines[0], lines=lines)


def _texts(spec: ClipSpec):
    """(field, path, text) of every prompt text of a clip."""
    for field in ("prompt", "negative"):
        value = getattr(spec, field)
        if isinstance(value, dict):
            for key, text in value.items():
                yield field, (field, key), str(text)
        elif value:
            yield field, (field,), str(value)
    for field in ("head", "tail"):
        if getattr(spec, field):
            yield field, (field,), getattr(spec, field)


def _input_files(spec: ClipSpec):
    """(field, path, source) of every file or folder a clip reads besides models: the pose source, the
    init_video source and the keyframe images."""
    for field in ("pose", "init_video"):
        part = getattr(spec, field)
        if part is not None and isinstance(part.source, str):
            yield field, (field, "source"), part.source
    for image in spec.keyframes.images.values() if spec.keyframes else ():
        if isinstance(image, str):
            yield "keyframes", ("keyframes",), image


def _input_problems(source: str, limits: Limits) -> list[str]:
    """Why an input source is too big or not a plain file (a FIFO or a device never ends)."""

    path = Path(source)
    try:
        files = sorted(p for p in path.iterdir()) if path.is_dir() else [path]
    except OSError:
        return []  # a missing source is reported by the source checks, with their wording
    out = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            if file is path or not stat.S_ISDIR(st.st_mode):
                out.append(f"{str(file)!r} is not a regular file (a device, FIFO or socket can be read forever); "
                           "give a video, an image folder or an OpenPose .json file")
            continue
        suffix = file.suffix.lower()
        name = "json" if suffix == ".json" else "video" if suffix in VIDEO_SUFFIXES else \
            "image" if suffix in IMAGE_SUFFIXES else None
        limit = getattr(limits, name) if name else None
        if limit is not None and st.st_size > limit:
            out.append(f"{name} file {file.name!r} is {amount(st.st_size, 'B')}, more than the limit of "
                       f"{amount(limit, 'B')}; use a smaller file, or {limits.flag(name, st.st_size)}")
    return out


class _Locator:
    """`file:line:col: clips[2].frames` for a render's field, at the layer that set it (the clip, then `defaults`);
    a value from a preset or the built-ins is reported at the clip. Without a script: `script: clip NAME: field`."""

    def __init__(self, script: Script | None):
        self.script = script if script is not None and not script.command_line else None
        self.positions = self.script.positions if self.script else {}
        self.index = {c.name: i for i, c in enumerate(self.script.model.clips)} if self.script else {}

    def _pos(self, path: tuple) -> str:
        return located(str(self.script.path), lookup(self.positions, path))

    def _set_at(self, spec, path: tuple) -> tuple | None:
        for full in (("clips", self.index.get(spec.name, 0)) + path, ("defaults",) + path):
            if full[:len(full) - len(path) + 1] in self.positions:
                return full
        return None

    def first_set(self, spec, fields: tuple) -> str:
        """The first of `fields` the clip sets itself, else the first its defaults set, else the first."""
        for layer in (0, 1):
            for field in fields:
                full = self._set_at(spec, (field,))
                if full is not None and (full[0] == "clips") == (layer == 0):
                    return field
        return fields[0]

    def __call__(self, spec, field: str, path: tuple | None = None) -> str:
        path = path or (field,)
        if self.script is None:
            return f"{spec.script or 'command line'}: clip {spec.name}: {loc_text(path)}"
        full = self._set_at(spec, path)
        if full is None:
            clip = ("clips", self.index.get(spec.name, 0))
            return f"{self._pos(clip)}: {loc_text(clip + path)} (from its preset or the built-in defaults)"
        return f"{self._pos(full)}: {loc_text(full)}"

    def top(self, field: str) -> str:
        return f"{self._pos((field,))}: {field}" if self.script is not None else field
