"""ClipSpec: one fully resolved render (a clip at one seed) as plain data, and its JSON form.

`to_dict` is what sidecars, embedded metadata, hashes, `replay`, workers and the server carry;
`from_dict` turns it back into the same ClipSpec, checking every value on the way in.

A plain clip field (one value, copied as it is from the merged layers) is declared once, here, with
`plain(schema, builtin)`: the script schema (ClipFields), the built-in defaults, resolution, `to_dict`
and `from_dict` all read it from this class. Adding one is one line, for example

    clip_skip: int = plain(Range(StrictInt, 0, 12), 0)

and then teaching the renderer to use it.
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from animate.errors import ConfigError
from animate.models.sources import Source
from animate.spec import subspecs
from animate.spec.lines import validation_problems
from animate.spec.resolved import Adapter, Context, FreeInit, InitVideo, Keyframes, Pose, Refine
from animate.spec.values import (AdapterName, ClipName, Data, OutputName, Prompt, Range, Schedule, SchedulerName, Seed,
                                 Size, Text, Weight, loc_text, show)


def plain(schema: Any, builtin: Any):
    """A plain clip field: checked by `schema` wherever it is set, `builtin` when no layer sets it. It stays
    required when a ClipSpec is built: a resolved spec holds every value."""
    return field(metadata={"schema": schema, "builtin": builtin})


@dataclass(frozen=True)
class ClipSpec:
    """One fully resolved render: a clip at one seed. Sources are resolved but nothing is loaded."""

    name: str
    seed: int
    multi_seed: bool
    model: Source
    motion_adapter: Source
    adapters: tuple[Adapter, ...]
    scheduler: str = plain(SchedulerName, "ddim")
    steps: int = plain(Range(StrictInt, 1, 200), 25)
    guidance: float = plain(Range(StrictFloat, 0, 30), 7.5)
    frames: int = plain(Range(StrictInt, 2, 1024), 16)  # one frame is a still: the motion modules need two
    fps: float = plain(Range(StrictFloat, 0, 120, lo_open=True), 8)
    width: int = plain(Size, 512)
    height: int = plain(Size, 512)
    prompt: str | dict  # text, or {frame: text} keyframes
    negative: str | dict
    head: str = plain(str, "")
    tail: str = plain(str, "")
    interpolation: str = plain(Literal["linear", "slerp"], "linear")
    context: Context
    loop: bool = plain(StrictBool, False)  # the last frame flows into the first
    outputs: dict  # format → its options
    fuse: bool = plain(StrictBool, True)
    decode_chunk: int = plain(Range(StrictInt, 1, 1024), 16)
    pose: Pose | None = None
    free_init: FreeInit | None = None  # None: off
    keyframes: Keyframes | None = None  # image keyframes (SparseCtrl)
    init_video: InitVideo | None = None  # video-to-video, or None (from noise)
    refine: Refine | None = None  # a second video-to-video pass, or None
    unet: Source | None = None  # a full UNet checkpoint loaded into the base's UNet (SDXL-Lightning), or None
    script: str = ""
    preset: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"{self.name}-s{self.seed}" if self.multi_seed else self.name

    def to_dict(self) -> dict:
        """Plain JSON-able form (for sidecars, metadata, hashing); `from_dict` reverses it exactly."""
        d = asdict(self)  # the sub-specs become dicts of their fields, in their order
        d["model"] = _source_dict(self.model)
        d["motion_adapter"] = _source_dict(self.motion_adapter)
        d["adapters"] = [{"name": a.name, "source": _source_dict(a.source), "kind": a.kind,
                          "weight": _weight_dict(a.weight)} for a in self.adapters]
        if self.pose:
            d["pose"]["controlnet"] = _source_dict(self.pose.controlnet)
        if self.keyframes:
            d["keyframes"]["sparsectrl"] = _source_dict(self.keyframes.sparsectrl)
        d["unet"] = _source_dict(self.unet)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> ClipSpec:
        """The ClipSpec `to_dict` made `data` from, also after a JSON round trip (frame keys back to numbers,
        weight ramps back to pairs). An unknown, missing or wrong value raises a ConfigError naming it."""
        names = [f.name for f in fields(cls)]
        _check_keys(data, (), required=[n for n in names if n not in _ADDED_LATER], optional=list(_ADDED_LATER))
        data = {**{k: make(data) for k, make in _ADDED_LATER.items() if k not in data}, **data}
        return cls(**{name: _READERS.get(name, _read_checked)(data[name], (name,)) for name in names})


# ---------------------------------------------------------------- the plain fields

_COERCE = {"int": int, "float": float, "str": str, "bool": bool}
PLAIN = {f.name: f for f in fields(ClipSpec) if "schema" in f.metadata}
PLAIN_TYPES = {name: f.metadata["schema"] for name, f in PLAIN.items()}  # what the script schema checks
for _f in PLAIN.values():
    if _f.type not in _COERCE:  # a plain field holds one scalar; anything richer needs its own resolution
        raise TypeError(f"plain field ClipSpec.{_f.name} must be int, float, str or bool (is {_f.type})")


def labeled_sources(spec: ClipSpec) -> list[tuple[str, str | None, Source]]:
    """Every model source a clip loads, as (field, adapter name or None, source)."""
    sources = [("model", None, spec.model), ("motion_adapter", None, spec.motion_adapter)]
    sources += [("adapter", a.name, a.source) for a in spec.adapters]
    if spec.unet is not None:
        sources.append(("unet", None, spec.unet))
    if spec.pose:
        sources.append(("controlnet", None, spec.pose.controlnet))
    if spec.keyframes:
        sources.append(("sparsectrl", None, spec.keyframes.sparsectrl))
    return sources


def plain_value(name: str, value: Any) -> Any:
    """A merged layer value of plain field `name` as ClipSpec holds it (8 → 8.0 for a float field)."""
    return _COERCE[PLAIN[name].type](value)


# ---------------------------------------------------------------- reading a recorded spec back

_WHERE = "clip spec"
_SOURCE_FIELDS = {f.name: f for f in fields(Source)}
_SOURCE_TYPES = {"str": StrictStr, "str | None": Optional[StrictStr], "bool": StrictBool}
_SOURCE_KINDS = ("hub", "folder", "file")  # models.Source.kind
# What each field holds in its JSON form; the fields holding Sources have their own readers below.
_TYPES: dict[str, Any] = {
    "name": ClipName, "seed": Seed, "multi_seed": StrictBool, "prompt": Prompt, "negative": Prompt | Literal[""],
    "outputs": Annotated[dict[OutputName, dict[str, Data]], Field(min_length=1)], "script": StrictStr,
    "preset": Optional[Text], "extra": dict[str, Data],
    **PLAIN_TYPES,
    **{f"source.{name}": _SOURCE_TYPES[f.type] for name, f in _SOURCE_FIELDS.items()},
    "adapter.name": AdapterName, "adapter.kind": Literal["lcm", "motion", "style"], "adapter.weight": Weight,
    "adapter.schedule": Schedule(Weight),
}


def _legacy_context(data: dict) -> dict:
    # Before `context:` a clip longer than the SD1.5 adapters' 32 frames slid 16-frame windows at stride 4.
    long = isinstance(data.get("frames"), int) and data["frames"] > 32
    return {"length": 16 if long else None, "overlap": 12 if long else None, "weighting": "pyramid",
            "noise": "shuffle_context", "blend": "motion"}


# Fields sidecars written before them lack: what those renders used.
_ADDED_LATER = {"context": _legacy_context, "loop": lambda data: False, "free_init": lambda data: None,
                "keyframes": lambda data: None, "init_video": lambda data: None, "refine": lambda data: None,
                "unet": lambda data: None}


def _weight_dict(weight):
    """A ramp as {start, end}; a schedule with text keys ("0.5"), as JSON holds them."""
    if isinstance(weight, tuple):
        return {"start": weight[0], "end": weight[1]}
    if isinstance(weight, dict):
        return {repr(float(k)): v for k, v in weight.items()}
    return weight


def _source_dict(src: Source | None) -> dict | None:
    # Options at their defaults are left out, as a person would write them.
    if src is None:
        return None
    return {k: v for k, v in asdict(src).items() if v != _SOURCE_FIELDS[k].default}


def _fail(path: tuple, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{loc_text(path)}: {message}" if path else message, where=_WHERE, hint=hint)


def _check_keys(data: Any, path: tuple, *, required, optional=()) -> None:
    if not isinstance(data, dict):
        raise _fail(path, f"must be a mapping (got {show(data)})")
    known = list(required) + list(optional)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            raise _fail(path + (key,), f"unknown field (got {show(data[key])})",
                        f"did you mean `{close[0]}`?" if close else "was it written by another version of animate?")
    for key in required:
        if key not in data:
            raise _fail(path + (key,), "required field is missing")


@functools.lru_cache(maxsize=None)
def _adapter(kind: str) -> TypeAdapter:
    return TypeAdapter(_TYPES[kind])


def _validated(kind: str, value: Any, path: tuple) -> Any:
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        raise _invalid(exc, value, path) from None


def _invalid(exc: ValidationError, value: Any, path: tuple, root=None) -> ConfigError:
    loc, message = (validation_problems(exc, value, root) or [((), f"is not valid (got {show(value)})")])[0]
    return _fail(path + loc, message)


def _read_checked(value: Any, path: tuple) -> Any:
    out = _validated(path[0], value, path)
    return plain_value(path[0], out) if path[0] in PLAIN else out


def _read_source(value: Any, path: tuple) -> Source:
    required = [n for n, f in _SOURCE_FIELDS.items() if f.default is MISSING]  # ref and kind
    _check_keys(value, path, required=required, optional=[n for n in _SOURCE_FIELDS if n not in required])
    out = {key: _validated(f"source.{key}", item, path + (key,)) for key, item in value.items()}
    if out["kind"] not in _SOURCE_KINDS:
        raise _fail(path + ("kind",), f"must be hub, folder or file (got {show(out['kind'])})")
    return Source(**out)


def _read_optional_source(value: Any, path: tuple) -> Source | None:
    return None if value is None else _read_source(value, path)


def _read_weight(value: Any, path: tuple) -> float | tuple[float, float] | dict:
    if isinstance(value, dict) and value and not {"start", "end"} & set(value):  # {progress: weight}
        points = _validated("adapter.schedule", value, path)
        return {float(k): float(v) for k, v in points.items()}
    if isinstance(value, dict):  # a ramp over the denoising steps
        _check_keys(value, path, required=["start", "end"])
        return (float(_validated("adapter.weight", value["start"], path + ("start",))),
                float(_validated("adapter.weight", value["end"], path + ("end",))))
    return float(_validated("adapter.weight", value, path))


def _read_adapters(value: Any, path: tuple) -> tuple:
    if not isinstance(value, list):
        raise _fail(path, f"must be a list (got {show(value)})")
    out = []
    for i, item in enumerate(value):
        at = path + (i,)
        _check_keys(item, at, required=["name", "source", "kind", "weight"])
        out.append(Adapter(name=_validated("adapter.name", item["name"], at + ("name",)),
                           source=_read_source(item["source"], at + ("source",)),
                           weight=_read_weight(item["weight"], at + ("weight",)),
                           kind=_validated("adapter.kind", item["kind"], at + ("kind",))))
    return tuple(out)


def _read_with_source(model: str, source_field: str, typed: type):
    """A reader for a record holding every field of a schema model and one model source (pose's `controlnet`,
    keyframes' `sparsectrl`), or None."""
    def read(value: Any, path: tuple):
        if value is None:
            return None
        cls = getattr(subspecs, model)
        _check_keys(value, path, required=list(dict.fromkeys([*cls.model_fields, source_field])))
        rest = {k: v for k, v in value.items() if k != source_field}
        try:
            checked = cls.model_validate(rest)  # frame numbers come back as int here
        except ValidationError as exc:
            raise _invalid(exc, rest, path, cls) from None
        source = _read_source(value[source_field], path + (source_field,))
        return typed(**{k: source if k == source_field else getattr(checked, k) for k in value})
    return read


def _read_options(model: str, optional: bool, typed: type):
    """A reader for a field holding every field of a schema model (context, free_init), or None when optional."""
    def read(value: Any, path: tuple):
        if value is None and optional:
            return None
        cls = getattr(subspecs, model)
        _check_keys(value, path, required=list(cls.model_fields))
        try:
            return typed(**cls.model_validate(value).model_dump())
        except ValidationError as exc:
            raise _invalid(exc, value, path, cls) from None

    return read


def _read_context(value: Any, path: tuple):
    """A record's context; one without `blend` was blended in the motion modules (the only blend before it, and
    what records leave out: animate.run.jobs)."""
    if isinstance(value, dict) and "blend" not in value:
        value = {**value, "blend": "motion"}
    return _read_options("ContextSpec", optional=False, typed=Context)(value, path)


_READERS = {"model": _read_source, "motion_adapter": _read_source, "adapters": _read_adapters,
            "pose": _read_with_source("PoseSpec", "controlnet", Pose),
            "keyframes": _read_with_source("KeyframesSpec", "sparsectrl", Keyframes),
            "context": _read_context,
            "free_init": _read_options("FreeInitSpec", optional=True, typed=FreeInit),
            "init_video": _read_options("InitVideoSpec", optional=True, typed=InitVideo),
            "refine": _read_options("RefineSpec", optional=True, typed=Refine),
            "unet": _read_optional_source}
