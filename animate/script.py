"""Prompt scripts: schema (pydantic, frozen, unknown keys forbidden), loading (YAML/JSON/TOML), presets
merge, and resolution into one frozen ClipSpec per (clip, seed). Every problem is reported at once,
one line each, as `file:line:col: field.path: message`."""
from __future__ import annotations

import bisect
import difflib
import functools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt,
                      ValidationError, field_validator, model_validator)
from pydantic_core import PydanticCustomError

from .errors import AnimateError, ConfigError

NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_SCRIPT_BYTES = 2_000_000
MAX_DEPTH = 32  # a real script nests about 7 levels (clips → pose → source → keyframe → points)
OUTPUT_FORMATS = ("gif", "mp4", "webm", "webp", "png", "prores", "ffv1", "sheet")
MAX_SEED = 2**63 - 1


# ---------------------------------------------------------------- value checks shared by the models

def _show(value: Any, limit: int = 60) -> str:
    """A short repr of a user's value for messages (safe for huge numbers)."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python will print
        return "a number with thousands of digits"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _between(lo: float, hi: float, lo_open: bool):
    def check(v):
        ok = (lo < v if lo_open else lo <= v) and v <= hi  # NaN fails both comparisons
        if not ok:  # the message gets "(got <the value as written>)" when formatted
            if lo_open:
                raise PydanticCustomError("range", f"must be more than {_num(lo)} and at most {_num(hi)}")
            raise PydanticCustomError("range", f"must be between {_num(lo)} and {_num(hi)}")
        return v

    return check


def Range(kind: Any, lo: float, hi: float, *, lo_open: bool = False) -> Any:
    """`kind` limited to [lo, hi] (or (lo, hi]), with one message naming both bounds."""
    schema = {"exclusiveMinimum" if lo_open else "minimum": lo, "maximum": hi}
    return Annotated[kind, AfterValidator(_between(lo, hi, lo_open)), Field(json_schema_extra=schema)]


def name_problem(name: str, what: str = "clip") -> str | None:
    """Why `name` cannot be a file name, or None. Names become output files, so they are kept plain."""
    if re.fullmatch(NAME_RE, name) and not name.endswith(".part"):
        return None
    fix = slug(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] or name)
    if "/" in name or "\\" in name or ".." in name or name.startswith("~"):
        why = f"a {what} name becomes a file name, so it cannot hold '/', '\\' or '..'"
    elif name.endswith(".part"):
        why = f"a {what} name cannot end in '.part' (that marks unfinished files)"
    elif not name:
        why = f"a {what} name cannot be empty"
    elif len(name) > 64:
        why = f"a {what} name is at most 64 characters"
    else:
        why = "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    return f"{why} (got {_show(name)}); try `{fix}`"


def _check_name(what: str):
    def check(v: str) -> str:
        problem = name_problem(v, what)
        if problem:
            raise ValueError(problem)
        return v

    return check


def _check_format(name: str) -> str:
    if name not in OUTPUT_FORMATS:
        close = difflib.get_close_matches(name.lower(), OUTPUT_FORMATS, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(OUTPUT_FORMATS)}"
        raise ValueError(f"unknown output format {_show(name)}; {hint}")
    return name


OutputName = Annotated[str, AfterValidator(_check_format), Field(json_schema_extra={"enum": list(OUTPUT_FORMATS)})]
ClipName = Annotated[str, AfterValidator(_check_name("clip")), Field(json_schema_extra={"pattern": NAME_RE})]
AdapterName = Annotated[str, AfterValidator(_check_name("adapter")), Field(json_schema_extra={"pattern": NAME_RE})]
Text = Annotated[str, Field(min_length=1)]
Seed = Range(StrictInt, 0, MAX_SEED)
Frame = Range(int, 0, 100_000)  # lax: JSON and TOML keys are strings ("12")
Prompt = Union[Annotated[str, Field(min_length=1, max_length=10_000)],
               dict[Frame, Annotated[str, Field(max_length=10_000)]]]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, v):
        # Text reaches file names, paths and tokenizers; a script is text, so NUL is always a mistake.
        if _has_nul(v):
            raise ValueError("text holds a NUL character")
        return v


class SourceSpec(Frozen):
    """A model source with options."""

    source: Text
    revision: Text | None = None
    weight_name: Text | None = None
    config: Text | None = None
    allow_pickle: StrictBool = False


SourceValue = Union[Text, SourceSpec]


class WeightRamp(Frozen):
    """A weight that moves linearly from `start` (first denoising step) to `end` (last step)."""

    start: Range(StrictFloat, -2, 3)
    end: Range(StrictFloat, -2, 3)


class AdapterSpec(Frozen):
    """One LoRA mixed at `weight` (a number, or {start, end} over the denoising steps); `kind` says which
    slot it fills (lcm, motion or style)."""

    name: AdapterName
    source: SourceValue | None = None
    weight: Range(StrictFloat, -2, 3) | WeightRamp = 1.0
    kind: Literal["lcm", "motion", "style"] | None = None


def _first_repeat(values) -> Any:
    """The first value of a list that appeared earlier in it, else None."""
    if isinstance(values, list):
        for i, value in enumerate(values):
            if value in values[:i]:
                return value
    return None


class PoseSpec(Frozen):
    """ControlNet OpenPose guidance."""

    source: Text | dict[Frame, dict[str, Any]]
    controlnet: SourceValue = "openpose"
    scale: Range(StrictFloat, 0, 2) = 1.0
    start: Range(StrictFloat, 0, 1) = 0.0
    end: Range(StrictFloat, 0, 1) = 1.0
    fit: Literal["contain", "cover", "stretch"] = "contain"
    kind: Literal["skeleton", "openpose-json", "keyframes", "person-video"] | None = None
    # Source options (see docs/pose.md): the clock of image/JSON frames, what to do when the source is
    # shorter than the clip, the pixel canvas of keypoints, the confidence cut-off, detector smoothing and
    # model (person videos: 0 lite, 1 full, 2 heavy).
    source_fps: Range(StrictFloat, 0, 240, lo_open=True) | None = None
    overrun: Literal["error", "hold", "loop"] | None = None
    canvas: Annotated[list[Range(StrictInt, 1, 16384)], Field(min_length=2, max_length=2)] | None = None
    threshold: Range(StrictFloat, 0, 1) | None = None
    smooth: StrictBool | None = None
    complexity: Literal[0, 1, 2] | None = None

    @field_validator("source")
    @classmethod
    def _keyframes(cls, v):
        if isinstance(v, dict) and not v:
            raise ValueError("pose keyframe mapping is empty; give at least {0: {...}} or a file path")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise PydanticCustomError("pose_order", "end ({end}) must be greater than start ({start})",
                                      {"end": self.end, "start": self.start})
        return self


class ClipFields(Frozen):
    """Every field a clip (or `defaults`, or a preset) may set."""

    preset: Text | Annotated[list[Text], Field(min_length=1, max_length=8)] | None = None  # later ones win
    description: str | None = None  # presets only: one line shown by `animate presets`
    model: SourceValue | None = None
    motion_adapter: SourceValue | None = None
    adapters: Annotated[list[AdapterSpec], Field(max_length=64)] | None = None
    scheduler: Text | None = None
    steps: Range(StrictInt, 1, 200) | None = None
    guidance: Range(StrictFloat, 0, 30) | None = None
    frames: Range(StrictInt, 2, 1024) | None = None  # one frame is a still: the motion modules need two
    fps: Range(StrictFloat, 0, 120, lo_open=True) | None = None
    width: Range(StrictInt, 8, 4096) | None = None
    height: Range(StrictInt, 8, 4096) | None = None
    seed: Seed | Annotated[list[Seed], Field(min_length=1, max_length=1000)] | None = None
    prompt: Prompt | None = None
    head: str | None = None
    tail: str | None = None
    interpolation: Literal["linear", "slerp"] | None = None
    negative: Prompt | None = None
    outputs: Annotated[list[OutputName], Field(min_length=1)] | \
        Annotated[dict[OutputName, dict[str, Any] | None], Field(min_length=1)] | None = None
    pose: PoseSpec | None = None
    fuse: StrictBool | None = None
    decode_chunk: Range(StrictInt, 1, 1024) | None = None

    @field_validator("width", "height")
    @classmethod
    def _by_eight(cls, v):
        if v is not None and v % 8:
            raise ValueError(f"must be divisible by 8 (got {v}); try {max(8, round(v / 8) * 8)}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v):
        from .schedulers import SCHEDULERS

        if v is not None and v not in SCHEDULERS:
            close = difflib.get_close_matches(v.lower(), list(SCHEDULERS), n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(SCHEDULERS)}"
            raise ValueError(f"unknown scheduler {_show(v)}; {hint}")
        return v

    @field_validator("outputs")
    @classmethod
    def _formats(cls, v):
        dup = _first_repeat(v)
        if dup is not None:
            raise ValueError(f"output format {dup!r} is listed twice")
        return v

    @field_validator("adapters")
    @classmethod
    def _unique_adapters(cls, v):
        if v is not None:
            problems = _adapter_clashes([a.name for a in v])
            if problems:
                raise PydanticCustomError("adapter_names", problems[0][1])
        return v

    @field_validator("seed")
    @classmethod
    def _unique_seeds(cls, v):
        dup = _first_repeat(v)
        if dup is not None:
            raise ValueError(f"seed {dup} is listed twice (got {_show(v)})")
        return v

    @field_validator("prompt", "negative")
    @classmethod
    def _keyframes(cls, v):
        if isinstance(v, dict) and not v:
            raise ValueError('keyframe mapping is empty; give at least {0: "..."}')
        return v


class ClipModel(ClipFields):
    name: ClipName


class ReelSpec(Frozen):
    """One MP4 of all the script's clips in order (script level)."""

    audio: Text | None = None
    crossfade: Range(StrictFloat, 0, 10) = 0.0
    fps: Range(StrictFloat, 0, 120, lo_open=True) | None = None


class ScriptModel(Frozen):
    version: Literal[1] = 1
    defaults: ClipFields | None = None
    clips: Annotated[list[ClipModel], Field(min_length=1, max_length=10_000)]
    outputs: list[Literal["reel"]] | None = None  # script-level outputs: `[reel]`
    reel: ReelSpec | None = None  # reel options; giving them also turns the reel on

    def reel_options(self) -> dict | None:
        """The reel settings when the script asks for one, else None."""
        if self.reel is None and "reel" not in (self.outputs or []):
            return None
        return (self.reel or ReelSpec()).model_dump()

    @field_validator("clips")
    @classmethod
    def _unique_names(cls, v):
        problems = _name_clashes([c.name for c in v])
        if problems:
            raise PydanticCustomError("clip_names", problems[0][1])
        return v


def _adapter_clashes(names: list) -> list[tuple[int, str]]:
    """(index, message) for each adapter whose name an earlier adapter in the same list uses."""
    first: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if isinstance(name, str) and name in first:
            out.append((i, f"adapter name {name!r} is already used by adapters[{first[name]}]; give each "
                           "adapter its own name (a clip re-weights a default adapter by repeating its name)"))
        elif isinstance(name, str):
            first[name] = i
    return out


def _name_clashes(names: list) -> list[tuple[int, str]]:
    """(index, message) for each clip whose name an earlier clip already uses."""
    first: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            out.append((i, f"clip name {name!r} is already used by clips[{first[name]}]; clip names become "
                           "file names and must be unique"))
        else:
            first[name] = i
    return out


# Built-in defaults: the bottom layer of every clip.
BUILTIN: dict[str, Any] = {
    "motion_adapter": "animatediff-v1-5-2",
    "adapters": [],
    "scheduler": "ddim",
    "steps": 25,
    "guidance": 7.5,
    "frames": 16,
    "fps": 8,
    "width": 512,
    "height": 512,
    "seed": 42,
    "head": "",
    "tail": "",
    "interpolation": "linear",
    "outputs": ["gif"],
    "fuse": True,
    "decode_chunk": 16,
}


@dataclass(frozen=True)
class ClipSpec:
    """One fully resolved render: a clip at one seed. Sources are resolved but nothing is loaded."""

    name: str
    seed: int
    multi_seed: bool
    model: Any  # models.Source
    motion_adapter: Any
    adapters: tuple  # of (name, Source, weight, kind)
    scheduler: str
    steps: int
    guidance: float
    frames: int
    fps: float
    width: int
    height: int
    prompt: str | dict
    negative: str | dict
    head: str
    tail: str
    interpolation: str
    outputs: dict
    fuse: bool
    decode_chunk: int
    pose: dict | None = None
    script: str = ""
    preset: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"{self.name}-s{self.seed}" if self.multi_seed else self.name

    def to_dict(self) -> dict:
        """Plain JSON-able form (for sidecars, metadata, hashing)."""
        d = asdict(self)
        d["model"] = _source_dict(self.model)
        d["motion_adapter"] = _source_dict(self.motion_adapter)
        d["adapters"] = [{"name": n, "source": _source_dict(s), "kind": k,
                          "weight": {"start": w[0], "end": w[1]} if isinstance(w, tuple) else w}
                         for n, s, w, k in self.adapters]
        if self.pose:
            d["pose"] = {**self.pose, "controlnet": _source_dict(self.pose["controlnet"])}
        return d


def _source_dict(src) -> dict | None:
    if src is None:
        return None
    return {k: v for k, v in asdict(src).items() if v not in (None, False) and k != "role"}


# ---------------------------------------------------------------- parsing, with where each value is
# `positions` maps a path such as ("clips", 2, "adapters", 1, "weight") to the (line, column) of its value,
# and path + ("__key__",) to the (line, column) of its key. Numeric keys are stored as int and as str.

class _Refused(Exception):
    """A parse-time problem with a position (raised inside the parsers, turned into a ConfigError)."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint


def _at(where: str, pos: tuple[int, int] | None) -> str:
    return f"{where}:{pos[0]}:{pos[1]}" if pos else where


def _record(positions: dict, path: tuple, pos: tuple[int, int], key_pos: tuple[int, int] | None = None) -> None:
    paths = [path]
    if path and isinstance(path[-1], str) and re.fullmatch(r"-?\d{1,9}", path[-1]):
        paths.append(path[:-1] + (int(path[-1]),))
    elif path and isinstance(path[-1], int) and not isinstance(path[-1], bool):
        paths.append(path[:-1] + (str(path[-1]),))
    for p in paths:
        positions.setdefault(p, pos)
        if key_pos:
            positions.setdefault(p + ("__key__",), key_pos)


@functools.lru_cache(maxsize=None)
def _yaml_loader():
    import yaml

    class ScriptLoader(yaml.SafeLoader):
        """The safe loader, refusing anchors and aliases (cheap 'billion laughs' bombs) and deep nesting."""

        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            mark = event.start_mark
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused("YAML anchors and aliases are not allowed in scripts", mark.line + 1,
                               mark.column + 1, "write the value out, or put shared settings under `defaults:`")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return ScriptLoader


def _parse_yaml(text: str) -> tuple[Any, dict, list]:
    import yaml

    loader = None
    try:
        loader = _yaml_loader()(text)  # the reader checks for unprintable characters here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        if exc.context and exc.problem and "expected a single document" in exc.context:
            problem = "a script is one YAML document; remove the extra `---`"
        elif exc.context and exc.problem and exc.context_mark and exc.context_mark is not mark:
            cm = exc.context_mark
            problem += f" {exc.context} (which starts at line {cm.line + 1}, column {cm.column + 1})"
        raise _Refused(f"invalid YAML: {problem}", *((mark.line + 1, mark.column + 1) if mark else ())) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise _Refused(f"invalid YAML: character {char!r} is not allowed", line, col) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None
    except ValueError as exc:  # timestamps like 2001-02-30, integers with more than 4300 digits
        raise _Refused(f"invalid YAML value: {str(exc).split(':')[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()

    positions: dict = {}
    duplicates: list = []

    def walk(node, path, key_pos=None):
        _record(positions, path, (node.start_mark.line + 1, node.start_mark.column + 1), key_pos)
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else None
                if isinstance(k, str) and key.tag.endswith(":int") and re.fullmatch(r"[-+]?\d{1,9}", k):
                    k = int(k)
                kp = (key.start_mark.line + 1, key.start_mark.column + 1)
                if k is not None and (key.tag, key.value) in seen:
                    duplicates.append((path + (k,), kp, f"duplicate key `{key.value}` (first at line "
                                                        f"{seen[(key.tag, key.value)]}); keep one"))
                    continue
                seen[(key.tag, key.value)] = kp[0]
                walk(value, path + (k,), kp)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if node is not None:
        walk(node, ())
    return data, positions, duplicates


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_ATOM = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


def _json_positions(text: str) -> tuple[dict, list]:
    """Positions of every value in JSON text that `json.loads` already accepted; also duplicate keys."""
    from json.decoder import scanstring

    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    positions: dict = {}
    duplicates: list = []

    def lc(i):
        n = bisect.bisect_right(starts, i)
        return n, i - starts[n - 1] + 1

    def value(i, path, depth, key_pos=None):
        i = _JSON_WS.match(text, i).end()
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", *lc(i))
        _record(positions, path, lc(i), key_pos)
        c = text[i]
        if c == '"':
            return scanstring(text, i + 1)[1]
        if c in "{[":
            close = "}" if c == "{" else "]"
            i = _JSON_WS.match(text, i + 1).end()
            if text[i] == close:
                return i + 1
            index, seen = 0, {}
            while True:
                if c == "{":
                    kp = lc(i)
                    key, i = scanstring(text, i + 1)
                    i = _JSON_WS.match(text, i).end() + 1  # the colon
                    if key in seen:
                        duplicates.append((path + (key,), kp, f"duplicate key `{key}` (first at line "
                                                               f"{seen[key]}); keep one"))
                        i = value(i, ("__duplicate__",), depth + 1)
                    else:
                        seen[key] = kp[0]
                        i = value(i, path + (key,), depth + 1, kp)
                else:
                    i = value(i, path + (index,), depth + 1)
                    index += 1
                i = _JSON_WS.match(text, i).end()
                if text[i] == close:
                    return i + 1
                i = _JSON_WS.match(text, i + 1).end()  # after the comma
        return _JSON_ATOM.match(text, i).end()

    value(0, (), 0)
    return positions, duplicates


def _parse_json(text: str) -> tuple[Any, dict, list]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON: {exc.msg[:1].lower()}{exc.msg[1:]}", exc.lineno, exc.colno) from None
    except ValueError as exc:  # integers with more than 4300 digits
        raise _Refused(f"invalid JSON value: {str(exc).split(':')[0]}") from None
    positions, duplicates = _json_positions(text)
    return data, positions, duplicates


_TOML_TABLE = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)"
                       r"\s*=\s*")


def _toml_keys(dotted: str) -> tuple:
    return tuple(p.strip().strip("\"'") for p in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", dotted))


def _toml_positions(text: str) -> dict:
    """Line and column of each `key = value` and table header (tables and keys on their own lines)."""
    positions: dict = {}
    counts: dict = {}  # array-of-tables path → its last index
    table: tuple = ()

    def resolved(keys):
        out = ()
        for k in keys:
            out += (k,)
            if out in counts:
                out += (counts[out],)
        return out

    for n, line in enumerate(text.splitlines(), 1):
        m = _TOML_TABLE.match(line)
        if m and not _TOML_KEY.match(line):
            keys = _toml_keys(m.group(2))
            if m.group(1) == "[[":
                base = resolved(keys[:-1]) + (keys[-1],)
                counts[base] = counts.get(base, -1) + 1
                table = base + (counts[base],)
            else:
                table = resolved(keys)
            _record(positions, table, (n, m.start(2) + 1))
            continue
        m = _TOML_KEY.match(line)
        if m:
            _record(positions, table + _toml_keys(m.group(1)), (n, m.end() + 1), (n, m.start(1) + 1))
    return positions


def _parse_toml(text: str) -> tuple[Any, dict, list]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg) or re.search(r"\s*\(at end of document\)$", msg)
        pos = (int(m.group(1)), int(m.group(2))) if m and m.groups() else ()
        msg = msg[:m.start()] if m else msg
        raise _Refused(f"invalid TOML: {msg[:1].lower()}{msg[1:]}", *pos) from None
    except ValueError as exc:
        raise _Refused(f"invalid TOML value: {str(exc).split(':')[0]}") from None
    return data, _toml_positions(text), []


def _raw_problems(data: Any) -> list[tuple[tuple, str]]:
    """Problems pydantic does not see: nesting depth and NUL characters (walked without recursion)."""
    out = []
    stack = [((), data)]
    while stack:
        path, node = stack.pop()
        if len(path) > MAX_DEPTH:
            out.append((path[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(node, str) and "\x00" in node:
            out.append((path, "text holds a NUL character"))
        elif isinstance(node, dict):
            stack.extend((path + (k,), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(node))))
    return out


def parse_text(text: str, suffix: str, where: str) -> tuple[Any, dict]:
    """Parse script text by suffix; return (data, positions). Raise ConfigError with a location."""
    data, positions, duplicates = _parse(text, suffix, where)
    if duplicates:
        lines = _lines([(path, msg, pos) for path, pos, msg in duplicates], where, positions)
        raise ConfigError(lines[0], lines=lines)
    return data, positions


def _parse(text: str, suffix: str, where: str) -> tuple[Any, dict, list]:
    if len(text) > MAX_SCRIPT_BYTES or len(text.encode("utf-8", "replace")) > MAX_SCRIPT_BYTES:
        raise ConfigError(f"script is larger than {MAX_SCRIPT_BYTES // 1_000_000} MB", where=where,
                          hint="split it into several scripts")
    if "\x00" in text:
        raise ConfigError("script is binary, not text", where=where, hint="give a YAML, JSON or TOML file")
    if not text.strip():
        raise ConfigError("script is empty", where=where, hint="start from an example in presets/examples/")
    parser = {".json": _parse_json, ".toml": _parse_toml}.get(suffix.lower(), _parse_yaml)
    try:
        return parser(text)
    except _Refused as exc:
        where = f"{where}:{exc.line}:{exc.col}" if exc.line else where
        raise ConfigError(exc.message, where=where, hint=exc.hint) from None
    except RecursionError:
        raise ConfigError(f"nested too deeply (the limit is {MAX_DEPTH} levels)", where=where) from None


# ---------------------------------------------------------------- validation errors as one line each

# Common names from other tools → our field.
SYNONYMS = {
    "cfg": "guidance", "cfg_scale": "guidance", "guidance_scale": "guidance", "num_inference_steps": "steps",
    "sampler": "scheduler", "num_frames": "frames", "length": "frames", "negative_prompt": "negative",
    "lora": "adapters", "loras": "adapters", "motion_module": "motion_adapter", "checkpoint": "model",
    "base_model": "model", "seeds": "seed", "format": "outputs", "formats": "outputs", "output": "outputs",
    "controlnet": "pose", "strength": "weight", "scale": "weight", "path": "source", "clip": "clips",
}
_TYPE_NAMES = {
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping",
}
# pydantic puts union branch names (`str`, `SourceSpec`, `list[...]`, `function-after[...]`) in locations.
_TAG = re.compile(r"[\[\]]|^(str|int|float|bool|list|dict|none|constrained-|function-|lax-or-strict|"
                  r"json-or-python|tagged-union|nullable|[A-Z])")


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _real_loc(raw: tuple, data: Any) -> tuple[tuple, tuple | None, bool]:
    """The location in the user's data, where a union was tried (or None), and whether it is a key error."""
    node, out, union_at, known, key_error = data, [], None, True, False
    for part in raw:
        if part == "[key]":
            key_error = True
            continue
        if known and isinstance(node, dict):
            for k in (part, str(part)) + ((int(part),) if isinstance(part, str) and part.isdigit() else ()):
                if k in node:
                    node = node[k]
                    out.append(part)
                    break
            else:
                k = None
            if k is not None:
                continue
        if known and isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
            continue
        if isinstance(part, str) and _TAG.search(part):
            if union_at is None:
                union_at = tuple(out)
            continue
        out.append(part)
        known = False
    return tuple(out), union_at, key_error


def _model_for(loc: tuple):
    """The pydantic model class that holds fields at `loc` (for did-you-mean)."""
    model = ScriptModel
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_field(loc: tuple, root) -> str:
    key = str(loc[-1])
    parent = root if len(loc) == 1 else _model_for_root(root, loc[:-1])
    names = [n for n in parent.model_fields if n != "description" or parent is ClipFields] if parent else []
    msg = "unknown field"
    if not names:
        return msg
    close = [n for n in names if n.lower() == key.lower().replace("-", "_").replace(" ", "_")]
    if not close and SYNONYMS.get(key.lower()) in names:
        close = [SYNONYMS[key.lower()]]
    close = close or difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
    if close:
        return f"{msg}; did you mean `{close[0]}`?"
    if len(names) <= 8:
        return f"{msg}; fields here: {', '.join(names)}"
    return f"{msg}; `animate schema` lists every field"


def _model_for_root(root, loc: tuple):
    if root is ScriptModel:
        return _model_for(loc)
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
        if model is None:
            return None
    return model


def _message(err: dict, loc: tuple, root) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field(loc, root)
    if kind == "missing":
        if loc == ("clips",):
            return "required field is missing; list the clips to render under `clips:`"
        return "required field is missing"
    if kind == "invalid_key":
        return "keys must be text"
    if kind in _TYPE_NAMES:
        if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
            return f"number is too large (got {_show(value)})"
        return f"must be {_TYPE_NAMES[kind]} (got {_show(value)})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        close = difflib.get_close_matches(str(value), re.findall(r"'([^']*)'", expected), n=1)
        hint = f"; did you mean `{close[0]}`?" if close and isinstance(value, str) else ""
        return f"must be {expected} (got {_show(value)}){hint}"
    if kind in ("too_short", "string_too_short"):
        if kind == "string_too_short" or isinstance(value, str):
            return "must not be empty"
        what = "clip" if loc == ("clips",) else "item"
        n = ctx.get("min_length", 1)
        return f"must list at least {n} {what}{'s' if n != 1 else ''} (got {len(value) if value is not None else 0})"
    if kind in ("too_long", "string_too_long"):
        n = ctx.get("max_length")
        unit = "characters" if isinstance(value, str) else "items"
        return f"must have at most {n} {unit} (got {len(value) if hasattr(value, '__len__') else '?'})"
    if kind == "range":
        return f"{err['msg']} (got {_show(value)})"
    if kind == "finite_number":
        return f"must be a finite number (got {_show(value)})"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[:1].lower() + msg[1:]
    return msg if "(got" in msg or _show(value) in msg else f"{msg} (got {_show(value)})"


def _problems(exc: ValidationError, data: Any, root=ScriptModel) -> list[tuple[tuple, str]]:
    """(location, message) for each problem, with union branches folded into one message."""
    items = []
    for err in exc.errors():
        if err["type"] in ("clip_names", "adapter_names"):  # reported with positions by _cross_checks
            continue
        loc, union_at, key_error = _real_loc(err["loc"], data)
        items.append((loc, union_at, key_error, err))
    out: list[tuple[tuple, str]] = []
    for loc, union_at, key_error, err in items:
        if key_error and err["type"] in _TYPE_NAMES:
            out.append((loc, f"keyframe keys must be frame numbers (got {_show(loc[-1])})"))
            continue
        if key_error:
            out.append((loc, _message(err, loc, root)))
            continue
        shallow = lambda it: it[0] == it[1] and it[3]["type"] in _TYPE_NAMES  # noqa: E731
        if union_at is None:
            out.append((loc, _message(err, loc, root)))
            continue
        group = [it for it in items if it[1] == union_at]
        me = (loc, union_at, key_error, err)
        if any(not shallow(it) for it in group):
            if not shallow(me):
                out.append((loc, _message(err, loc, root)))
            continue
        if err is group[0][3]:
            kinds = []
            for it in group:
                name = _TYPE_NAMES[it[3]["type"]]
                if name not in kinds:
                    kinds.append(name)
            out.append((union_at, f"must be {' or '.join(kinds)} (got {_show(err.get('input'))})"))
    return out


def _lookup(positions: dict, loc: tuple, key: bool = False):
    if key and loc + ("__key__",) in positions:
        return positions[loc + ("__key__",)]
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return None


def _lines(problems: list[tuple], where: str, positions: dict) -> list[str]:
    """`file:line:col: path: message` for each (path, message[, position]), deduplicated, in order."""
    lines = []
    for loc, msg, *known in problems:
        pos = known[0] if known else _lookup(positions, loc, key=msg.startswith(("unknown field", "keys must")))
        head = _at(where, pos)
        line = f"{head}: {_loc_text(loc)}: {msg}" if loc else f"{head}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def format_errors(exc: ValidationError, where: str, positions: dict, data: Any, prefix: tuple = (),
                  root=ScriptModel) -> list[str]:
    """One line per problem, deduplicated across union branches."""
    return _lines([(prefix + loc, msg) for loc, msg in _problems(exc, data, root)], where, positions)


@dataclass
class Script:
    """A validated script and where it came from."""

    path: Path
    model: ScriptModel
    positions: dict
    command_line: bool = False  # built from command-line flags (errors name flags, not file positions)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_script(path: str | Path) -> Script:
    """Read and validate a script file; every problem is reported in one ConfigError."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise ConfigError("no such file", where=where, hint="check the script path")
    if path.is_dir():
        raise ConfigError("is a folder, not a script file", where=where)
    if path.stat().st_size > MAX_SCRIPT_BYTES:
        raise ConfigError(f"script is larger than {MAX_SCRIPT_BYTES // 1_000_000} MB", where=where,
                          hint="split it into several scripts")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise ConfigError("script is binary, not text", where=where, hint="give a YAML, JSON or TOML file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"script is not UTF-8 text (byte {exc.start + 1} on line {line})", where=where,
                          hint="save it as UTF-8 YAML, JSON or TOML") from None
    return parse_script(text, where=where, suffix=path.suffix or ".yaml", path=path)


def _cross_checks(data: dict) -> list[tuple[tuple, str]]:
    """Unique clip names and unique adapter names per list, found even when other fields are wrong."""
    out = []
    clips = data.get("clips") if isinstance(data.get("clips"), list) else []
    names = [c.get("name") if isinstance(c, dict) else None for c in clips]
    out += [(("clips", i, "name"), msg) for i, msg in _name_clashes(names)]
    holders = [(("defaults",), data.get("defaults"))] + [(("clips", i), c) for i, c in enumerate(clips)]
    for path, holder in holders:
        adapters = holder.get("adapters") if isinstance(holder, dict) else None
        if isinstance(adapters, list):
            names = [a.get("name") if isinstance(a, dict) else None for a in adapters]
            out += [(path + ("adapters", i, "name"), msg) for i, msg in _adapter_clashes(names)]
    return out


def parse_script(text: str, *, where: str = "<script>", suffix: str = ".yaml", path: Path | None = None) -> Script:
    """Validate script text in one pass; raise one ConfigError holding every problem."""
    data, positions, duplicates = _parse(text, suffix, where)
    if data is None:
        raise ConfigError("script is empty", where=where, hint="start from an example in presets/examples/")
    if not isinstance(data, dict):
        kind = {list: "a list", str: "plain text"}.get(type(data), type(data).__name__)
        raise ConfigError(f"the top level must be a mapping with `clips:` (got {kind})", where=_at(where, (1, 1)),
                          hint="start from an example in presets/examples/")
    problems = [(loc, msg, pos) for loc, pos, msg in duplicates] + _raw_problems(data)
    if not problems:
        problems += _cross_checks(data)
        try:
            model = ScriptModel.model_validate(data)
        except ValidationError as exc:
            problems = _problems(exc, data) + problems
        except (RecursionError, OverflowError) as exc:
            problems.append(((), f"script is too deeply nested or holds numbers too large ({type(exc).__name__})"))
    if problems:
        problems.sort(key=lambda p: p[2] if len(p) > 2 else _lookup(positions, p[0]) or (0, 0))
        lines = _lines(problems, where, positions)
        raise ConfigError(lines[0], lines=lines)
    return Script(path=path or Path(where), model=model, positions=positions)


# ---------------------------------------------------------------- presets and resolution

def presets_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "presets", here / "presets"):
        if candidate.is_dir():
            return candidate
    from importlib.resources import files

    return Path(str(files("animate") / "presets"))


def list_presets() -> dict[str, str]:
    """Built-in preset name → its one-line description."""
    import yaml

    out = {}
    for p in sorted(presets_dir().glob("*.yaml")):
        data = yaml.safe_load(p.read_text()) or {}
        out[p.stem] = str(data.get("description", ""))
    return out


def load_preset(name: str, base_dir: Path, where: str) -> dict:
    """A preset by built-in name or by path (a YAML file of clip fields); `where` prefixes error lines."""
    candidate = presets_dir() / f"{name}.yaml"
    path = candidate if re.fullmatch(r"[a-z0-9._-]+", name) and candidate.exists() else (base_dir / name)
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        close = difflib.get_close_matches(name, list(list_presets()), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"built-in presets: {', '.join(list_presets())}"
        raise ConfigError(f"unknown preset {_show(name)}", where=where, hint=hint)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read preset {str(path)!r} ({exc})", where=where) from None
    data, positions = parse_text(text, ".yaml", str(path))
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError("a preset must be a mapping of clip fields", where=_at(str(path), (1, 1)))
    try:
        ClipFields.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, str(path), positions, data, root=ClipFields)
        raise ConfigError(lines[0], lines=lines) from None
    data = dict(data)
    data.pop("description", None)
    if "preset" in data:
        raise ConfigError("presets cannot name another preset", where=_at(str(path), positions.get(("preset",))))
    return data


def _merge(layers: list[tuple[str, dict]]) -> tuple[dict, dict]:
    """Later layers win; adapters merge by name so a clip can add a LoRA or re-weight one.
    Returns the fields and, for each field, the layer that set it last."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for layer, values in layers:
        for key, value in values.items():
            if value is None:
                continue
            if key == "adapters" and "adapters" in out:
                merged = {a["name"]: dict(a) for a in out["adapters"]}
                for a in value:
                    merged[a["name"]] = {**merged.get(a["name"], {}), **{k: v for k, v in a.items() if v is not None}}
                out[key] = list(merged.values())
            else:
                out[key] = value
            origin[key] = layer
    return out, origin


def _dump(model: BaseModel | None) -> dict:
    return model.model_dump(exclude_none=True, exclude_unset=True) if model is not None else {}


class _Sites:
    """Turns (clip index, layer, path) into `file:line:col: clips[2].prompt` for resolution errors."""

    def __init__(self, script: Script, clip_index: int, clip_adapters: list, default_adapters: list):
        self.script, self.index = script, clip_index
        self.where = "command line" if script.command_line else str(script.path)
        self.clip_adapters = [a["name"] for a in clip_adapters]
        self.default_adapters = [a["name"] for a in default_adapters]

    def __call__(self, path: tuple, layer: str = "clip", key: bool = False) -> str:
        if layer == "command line" or self.script.command_line:
            return f"command line: {_loc_text(path)}"
        if path[:1] == ("adapters",) and isinstance(path[1], str):  # an adapter by name → its entry
            name = path[1]
            if layer == "defaults" or name not in self.clip_adapters and name in self.default_adapters:
                layer, path = "defaults", ("adapters", self.default_adapters.index(name)) + path[2:]
            elif name in self.clip_adapters:
                layer, path = "clip", ("adapters", self.clip_adapters.index(name)) + path[2:]
        full = (("defaults",) if layer == "defaults" else ("clips", self.index)) + path
        return f"{_at(self.where, _lookup(self.script.positions, full, key=key))}: {_loc_text(full)}"


def resolve(script: Script, overrides: dict | None = None, *, only: list[str] | None = None) -> list[ClipSpec]:
    """Every (clip, seed) of a script as a ClipSpec: built-in ⊕ preset ⊕ defaults ⊕ clip ⊕ overrides.
    Every problem in every clip is reported in one ConfigError."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides:
        try:
            ClipFields.model_validate(overrides)
        except ValidationError as exc:
            lines = _lines([(loc, msg) for loc, msg in _problems(exc, overrides, ClipFields)], "command line", {})
            raise ConfigError(lines[0], lines=lines) from None
    names = [c.name for c in script.model.clips]
    for wanted in only or []:
        if wanted not in names:
            close = difflib.get_close_matches(wanted, names, n=1)
            raise ConfigError(f"no clip named {wanted!r}", where="--only",
                              hint=f"did you mean `{close[0]}`?" if close else f"clips: {', '.join(names)}")
    defaults = _dump(script.model.defaults)
    specs: list[ClipSpec] = []
    problems: list[str] = []
    stems: dict[str, tuple[int, str, int]] = {}
    for index, clip in enumerate(script.model.clips):
        if only and clip.name not in only:
            continue
        own = _dump(clip)
        sites = _Sites(script, index, own.get("adapters", []), defaults.get("adapters", []))
        preset_name, preset_layer = next(((layer[k], name) for name, layer, k in (
            ("command line", overrides, "preset"), ("clip", own, "preset"), ("defaults", defaults, "preset"))
            if layer.get(k)), (None, None))
        preset: dict = {}
        names = [preset_name] if isinstance(preset_name, str) else list(preset_name or [])
        try:
            for i, name in enumerate(names):  # e.g. [lcm, reels]: a render preset, then an output preset
                path = ("preset",) if isinstance(preset_name, str) else ("preset", i)
                preset = _merge([("preset", preset),
                                 ("preset", load_preset(name, script.base_dir, sites(path, preset_layer)))])[0]
        except ConfigError as exc:
            problems.extend(exc.line().splitlines())
            continue
        preset_name = "+".join(names) or None
        fields, origin = _merge([
            ("built-in", BUILTIN), ("preset", preset),
            ("defaults", {k: v for k, v in defaults.items() if k != "preset"}),
            ("clip", {k: v for k, v in own.items() if k not in ("preset", "name")}),
            ("command line", {k: v for k, v in overrides.items() if k != "preset"})])
        clip_specs, clip_problems = _resolve_clip(clip.name, fields, origin, sites, script, preset_name)
        problems.extend(clip_problems)
        for spec in clip_specs:
            if spec.stem in stems and stems[spec.stem][0] != index:
                other, other_name, other_seed = stems[spec.stem]
                problems.append(f"{sites(('name',))}: {clip.name!r} writes the same files ({spec.stem}.*) as "
                                f"clips[{other}] {other_name!r} at seed {other_seed}; rename one of them")
            stems.setdefault(spec.stem, (index, spec.name, spec.seed))
        specs.extend(clip_specs)
    if problems:
        lines = list(dict.fromkeys(problems))
        raise ConfigError(lines[0], lines=lines)
    return specs


def _resolve_clip(name: str, f: dict, origin: dict, sites: _Sites, script: Script,
                  preset_name: str | None) -> tuple[list[ClipSpec], list[str]]:
    """One clip's ClipSpecs (one per seed) and its problems."""
    from .models import resolve_source

    base_dir = script.base_dir
    problems: list[str] = []
    if not f.get("model"):
        problems.append(f"{sites(('model',))}: required field is missing; set it in the clip or under defaults "
                        "(a hub id like owner/name, a folder, a .safetensors file, or `tiny` for the offline kit)")
    if not f.get("prompt"):
        problems.append(f"{sites(('prompt',))}: required field is missing; every clip needs a prompt (text, "
                        'or keyframes like {0: "...", 12: "..."})')
    frames = int(f["frames"])
    for key, label in (("prompt", "keyframe"), ("negative", "keyframe")):
        value = f.get(key)
        if isinstance(value, dict):
            for k in sorted(k for k in value if k >= frames):
                problems.append(f"{sites((key, k), key=True)}: {label} {k} is past the last frame ({frames - 1}); use keys "
                                f"below {frames} or raise `frames`")

    def src(value, path: tuple, slot=None, layer="clip"):
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        try:
            return resolve_source(value, base_dir=base_dir, field=_loc_text(path), slot=slot)
        except AnimateError as exc:
            problems.append(f"{sites(path, layer)}: {exc.message}" + (f"; {exc.hint}" if exc.hint else ""))
        except (OSError, ValueError) as exc:  # a path the system cannot even look at (too long, bad bytes)
            reason = getattr(exc, "strerror", None) or str(exc)
            problems.append(f"{sites(path, layer)}: cannot use this path ({reason})")
        return None

    model = src(f["model"], ("model",), layer=origin.get("model")) if f.get("model") else None
    motion = src(f["motion_adapter"], ("motion_adapter",), slot="motion", layer=origin.get("motion_adapter"))
    adapters = []
    for a in f.get("adapters") or []:
        if a.get("source") is None:
            problems.append(f"{sites(('adapters', a['name'], 'source'))}: required field is missing (adapter "
                            f"{a['name']!r} has no source here, in defaults or in the preset)")
            continue
        s = src(a["source"], ("adapters", a["name"], "source"), layer=origin.get("adapters"))
        if s is None:
            continue
        kind = a.get("kind") or ("lcm" if s.role == "lcm" or a["name"] == "lcm" else
                                 "motion" if s.role == "motion-lora" else "style")
        weight = a.get("weight", 1.0)
        weight = (float(weight["start"]), float(weight["end"])) if isinstance(weight, dict) else float(weight)
        adapters.append((a["name"], s, weight, kind))
    pose = None
    if f.get("pose"):
        # Fill the pose defaults (scale, start, end, fit) so the renderer and sidecar see every value.
        p = {k: v for k, v in PoseSpec.model_construct().model_dump().items() if k != "source"}
        p.update({k: v for k, v in dict(f["pose"]).items() if v is not None})
        layer = origin.get("pose")
        p["controlnet"] = src(p.get("controlnet", "openpose"), ("pose", "controlnet"), slot="controlnet",
                              layer=layer)
        if isinstance(p["source"], str):
            path = base_dir / Path(p["source"]).expanduser()
            try:
                exists = path.exists()
            except (OSError, ValueError):
                exists = False
            if not exists:
                problems.append(f"{sites(('pose', 'source'), layer)}: no such file or folder: {p['source']!r} "
                                "(relative paths resolve against the script's folder)")
            p["source"] = str(path.resolve()) if exists else str(path)
        else:
            for k in sorted(k for k in p["source"] if k >= frames):
                problems.append(f"{sites(('pose', 'source', k), key=True)}: pose keyframe {k} is past the last frame "
                                f"({frames - 1}); use keys below {frames} or raise `frames`")
        pose = p
    if problems:
        return [], problems
    outputs = f["outputs"]
    outputs = {k: dict(v or {}) for k, v in outputs.items()} if isinstance(outputs, dict) else \
        {k: {} for k in outputs}
    seeds = f["seed"] if isinstance(f["seed"], list) else [f["seed"]]
    return [ClipSpec(
        name=name, seed=int(seed), multi_seed=len(seeds) > 1, model=model, motion_adapter=motion,
        adapters=tuple(adapters), scheduler=f["scheduler"], steps=int(f["steps"]), guidance=float(f["guidance"]),
        frames=frames, fps=float(f["fps"]), width=int(f["width"]), height=int(f["height"]),
        prompt=f["prompt"], negative=f.get("negative") or "", head=f.get("head") or "", tail=f.get("tail") or "",
        interpolation=f["interpolation"], outputs=outputs, fuse=bool(f["fuse"]), decode_chunk=int(f["decode_chunk"]),
        pose=pose, script="" if script.command_line else str(script.path), preset=preset_name,
    ) for seed in seeds], []


def json_schema() -> dict:
    """The JSON Schema of a script (for editors)."""
    return ScriptModel.model_json_schema()


def spec_from_fields(fields: dict, *, name: str = "clip", base_dir: str | Path = ".") -> list[ClipSpec]:
    """Resolve one clip from keyword fields (the `--prompt` command line and the Python API)."""
    data = {"version": 1, "clips": [{"name": name, **{k: v for k, v in fields.items() if v is not None}}]}
    try:
        model = ScriptModel.model_validate(data)
    except ValidationError as exc:
        problems = [(loc[2:] if loc[:2] == ("clips", 0) else loc, msg) for loc, msg in _problems(exc, data)]
        lines = _lines(problems, "command line", {}) or [f"command line: {_short_error(exc)}"]
        raise ConfigError(lines[0], lines=lines) from None
    script = Script(path=Path(base_dir) / f"{name}.yaml", model=model, positions={}, command_line=True)
    return resolve(script)


def _short_error(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    return f"{_loc_text(tuple(first.get('loc', ())))}: {first.get('msg', str(exc))}"


def slug(text: str, limit: int = 40) -> str:
    """A safe clip name from free text."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "clip"
