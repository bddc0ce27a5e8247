"""Hypothesis strategies drawn from the script schema itself: a clip is built by walking `ClipModel`'s pydantic
annotations (the plain ClipSpec fields included, through `plain(schema, builtin)`), so a field added to the
schema is drawn here without touching this file.

The walk reads the value types of animate.spec.values from their own metadata (ranges, lengths, enums,
patterns) and checks each drawn value with the type's own validator. Only what the schema cannot say is told
here: which text fields name files (they must exist to resolve), the model sources (they must resolve offline),
which keys are frame numbers (they must fall inside the clip) and what a clip needs from some layer (a model,
a prompt, an adapter's source).

`forms()` lists every field of every model a clip holds, once per branch of its union (a weight as a number, a
{start, end} ramp or a schedule): a `Walk(files, form)` draws clips that set that field in that form.
"""
from __future__ import annotations

import functools
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from animate.models.sources import HUB_ID, KNOWN_MODELS, TINY_MODELS, ModelError, resolve_source
from animate.models.schedulers import SCHEDULERS
from animate.spec import ClipModel, SourceSpec, list_presets
from animate.spec.values import Frame, SchedulerName, Size

CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # a script is text: no NUL
MAX_ITEMS = 3  # lists and mappings: the shapes matter here, not the sizes
MAX_TEXT = 12
FRAME_KEYS = 8  # frame keys 0..7, clips of at least 8 frames
MAX_OPTIONAL = 6  # optional fields drawn per mapping: a few at a time keep combinations the resolver refuses rare
NONE = type(None)

json_data = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(-1e6, 1e6, allow_nan=False)
    | st.text(CHARS, max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(CHARS, max_size=4), inner, max_size=2),
    max_leaves=4)

# Offline sources: every kit model but the SDXL ones (built on first use, seconds), every registry name, hub ids.
SOURCE_NAMES = sorted(n for n in TINY_MODELS if not n.startswith("tiny-xl")) + sorted(KNOWN_MODELS)
hub_ids = st.from_regex(r"[a-z][a-z0-9-]{0,6}/[A-Za-z0-9._-]{1,10}", fullmatch=True).filter(HUB_ID.match)

Form = tuple[tuple[str, ...], int | None]  # (field path, union branch or None)


def forms(cls: type[BaseModel] = ClipModel, prefix: tuple = ()) -> list[Form]:
    """Every field path under `cls` (lists and mappings are looked through), once per branch of its union."""
    out: list[Form] = []
    for name, info in cls.model_fields.items():
        path = prefix + (name,)
        count = len(_branches(info.annotation))
        out += [(path, i) for i in range(count)] if count > 1 else [(path, None)]
        for model in _models(info.annotation):
            out += forms(model, path)
    return out


def form_id(form: Form) -> str:
    path, branch = form
    return ".".join(path) + ("" if branch is None else f"[{branch}]")


def resolves(value) -> bool:
    try:
        resolve_source(value, field="x")
    except ModelError:
        return False
    except RuntimeError:  # `~user/...` paths (no such user): resolution's own defect, not a reader's
        return False
    return True


class Walk:
    """Strategies for schema annotations. `files` maps a kind of file field (image, video, pose) to names of files
    beside the script; `form` is a field path every clip sets, in one branch of its union when given."""

    def __init__(self, files: dict[str, list[str]], form: Form = ((), None)):
        self.focus, self.branch = form
        image, video = st.sampled_from(files["image"]), st.sampled_from(files["video"])
        presets = st.sampled_from(sorted(p for p in list_presets() if "xl" not in p))
        # (model, field) → what its text leaves are: file names beside the script, or preset names.
        self.text_fields = {("PoseSpec", "source"): st.sampled_from(files["pose"]),
                            ("InitVideoSpec", "source"): video, ("KeyframesSpec", "images"): image,
                            ("ClipModel", "keyframes"): image, ("ClipModel", "init_image"): image,
                            ("ClipModel", "preset"): presets}
        self.required = {("ClipModel", "name"), ("ClipModel", "model"), ("ClipModel", "prompt"),
                         ("AdapterSpec", "source")}
        self.values = {("ClipModel", "frames"): st.integers(FRAME_KEYS, 1024),
                       ("SourceSpec", "sha256"): st.from_regex(r"[0-9a-f]{64}", fullmatch=True)}
        self.types = [(SchedulerName, st.sampled_from(sorted(SCHEDULERS))),
                      (Size, st.integers(1, 512).map(lambda n: n * 8)),
                      (Frame, st.integers(0, FRAME_KEYS - 1))]
        self._fields: dict[tuple, st.SearchStrategy] = {}  # each model sits at one path, so (model, field) is one

    def clip(self) -> st.SearchStrategy[dict]:
        """A clip as a script writes it, every value as the schema takes it."""
        return self.model(ClipModel, ())

    def model(self, cls: type[BaseModel], path: tuple) -> st.SearchStrategy[dict]:
        """A mapping of `cls`'s fields: the required ones, the one on the focus path, and a few more."""
        forced = {self.focus[len(path)]} if self.focus[:len(path)] == path and len(self.focus) > len(path) else set()
        return _model_dicts(self, cls, path, forced).filter(functools.partial(_valid_model, cls))

    def field(self, cls: type[BaseModel], name: str, path: tuple) -> st.SearchStrategy:
        key = (cls.__name__, name)
        if key in self.values:
            return self.values[key]
        if key not in self._fields:
            self._fields[key] = self._field(cls, name, path + (name,))
        return self._fields[key]

    def _field(self, cls: type[BaseModel], name: str, path: tuple) -> st.SearchStrategy:
        info = cls.model_fields[name]
        tp = info.annotation
        if info.default is None and not info.is_required():  # None and absent mean the same: drawn by absence
            tp = _without_none(tp)
        on_focus = self.focus[:len(path)] == path
        branch = self.branch if path == self.focus else None
        if SourceSpec in _branches(tp):
            return self.source(branch)
        if branch is not None:
            tp = _branches(tp)[branch]
        else:
            extra = [FieldInfo(json_schema_extra=info.json_schema_extra)] if info.json_schema_extra else []
            if info.metadata or extra:
                tp = Annotated[(tp, *info.metadata, *extra)]
        return self.of(tp, path, text=self.text_fields.get((cls.__name__, name)), filled=on_focus)

    # ------------------------------------------------------------------ values
    def of(self, tp: Any, path: tuple, text: st.SearchStrategy | None = None, filled: bool = False):
        """Values of `tp` at `path`; `filled`: a list or mapping holds at least one item (the focus is inside)."""
        for known, strategy in self.types:
            if tp is known or tp == known:
                return strategy
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            return self._annotated(tp, path, text, filled)
        if origin in (Union, types.UnionType):
            return st.one_of([self.of(a, path, text, filled) for a in args])
        if origin is Literal:
            return st.sampled_from(args)
        if origin in (dict, list):
            return self._items(tp, path, text, {"min": 1 if filled else 0})
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return self.model(tp, path)
        return _leaf(tp, {}, text)

    def _annotated(self, tp: Any, path: tuple, text, filled: bool) -> st.SearchStrategy:
        base, *meta = get_args(tp)
        limits: dict[str, Any] = {}
        checked = False
        for item in _flat(meta):
            if isinstance(item, annotated_types.MinLen):
                limits["min"] = item.min_length
            elif isinstance(item, annotated_types.MaxLen):
                limits["max"] = item.max_length
            elif isinstance(item, dict):  # json_schema_extra: the bounds, enums and patterns Range and co. set
                limits.update(item)
            elif isinstance(item, AfterValidator):
                checked = True
        if get_origin(base) in (dict, list):
            strategy = self._items(base, path, text, {**limits, "min": max(limits.get("min", 0), int(filled))})
        elif base in (int, float, str, bool) or base is Any:
            strategy = _leaf(base, limits, text)
        else:
            strategy = self.of(base, path, text, filled)
        if checked:  # the type's own check (a name's rules, a schedule's order, ...) has the last word
            strategy = strategy.filter(functools.partial(_valid, tp))
        return strategy

    def _items(self, tp: Any, path: tuple, text, limits: dict) -> st.SearchStrategy:
        args = get_args(tp)
        lo = limits.get("min", 0)
        hi = max(lo, min(limits.get("max", MAX_ITEMS), MAX_ITEMS))
        if get_origin(tp) is list:
            return st.lists(self.of(args[0], path, text, filled=bool(lo)), min_size=lo, max_size=hi)
        return st.dictionaries(self.of(args[0], path), self.of(args[1], path, text, filled=bool(lo)),
                               min_size=lo, max_size=hi)

    def source(self, branch: int | None = None) -> st.SearchStrategy:
        """A model source value: a kit or registry name or a hub id (branch 0), or SourceSpec's mapping with
        options (branch 1)."""
        names = st.sampled_from(SOURCE_NAMES) | hub_ids
        walked = _model_dicts(self, SourceSpec, ("source",), set(), {"source": names}).filter(resolves)
        return [names, walked][branch] if branch is not None else names | walked


@st.composite
def _model_dicts(draw, walk: Walk, cls: type[BaseModel], path: tuple, forced: set, given: dict | None = None):
    """A mapping of `cls`'s fields as a script writes it: its required fields, `forced` ones, `given` ones (from
    the strategies given) and a few optional ones."""
    given = given or {}
    fields = cls.model_fields
    must = [n for n, f in fields.items()
            if f.is_required() or (cls.__name__, n) in walk.required or n in given or n in forced]
    optional = [n for n in fields if n not in must]
    chosen = set(draw(st.lists(st.sampled_from(optional), unique=True, max_size=MAX_OPTIONAL))) if optional else set()
    return {n: draw(given[n] if n in given else walk.field(cls, n, path)) for n in fields if n in must or n in chosen}


def _leaf(tp: Any, limits: dict, text: st.SearchStrategy | None) -> st.SearchStrategy:
    if tp is Any:
        return json_data
    if tp is NONE:
        return st.none()
    if tp is bool:
        return st.booleans()
    if "enum" in limits:
        return st.sampled_from(limits["enum"])
    if tp is int:
        return st.integers(limits.get("minimum", -2**40), limits.get("maximum", 2**40))
    if tp is float:
        lo = limits.get("exclusiveMinimum", limits.get("minimum", -1e6))
        return st.floats(lo, limits.get("maximum", 1e6), exclude_min="exclusiveMinimum" in limits, allow_nan=False,
                         allow_infinity=False)
    if tp is str:
        if text is not None and limits.get("min", 0) >= 1:
            return text
        if "pattern" in limits:
            return st.from_regex(limits["pattern"], fullmatch=True)
        lo = limits.get("min", 0)
        return st.text(CHARS, min_size=lo, max_size=max(lo, min(limits.get("max", MAX_TEXT), MAX_TEXT)))
    raise TypeError(f"no strategy for {tp!r}: teach tests/spec_strategies.py this type")


def _flat(meta: list) -> list:
    """Annotated metadata with each FieldInfo opened into its constraints and json_schema_extra."""
    out = []
    for item in meta:
        if isinstance(item, FieldInfo):
            out += _flat(item.metadata)
            if isinstance(item.json_schema_extra, dict):
                out.append(item.json_schema_extra)
        else:
            out.append(item)
    return out


def _branches(tp: Any) -> list:
    """The branches of a union annotation, nested unions opened and None left out; or [tp]."""
    inner = tp
    while get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (Union, types.UnionType):
        return [b for a in get_args(inner) if a is not NONE for b in _branches(a)]
    return [tp]


def _models(tp: Any) -> list[type[BaseModel]]:
    """The schema models inside an annotation (sources are drawn whole, not walked)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [] if tp is SourceSpec else [tp]
    return [m for arg in get_args(tp) for m in _models(arg)]


def _without_none(tp: Any) -> Any:
    branches = _branches(tp) if get_origin(tp) in (Union, types.UnionType) else [tp]
    return branches[0] if len(branches) == 1 else Union[tuple(branches)]


_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}


def _adapter(tp: Any) -> TypeAdapter:
    if id(tp) not in _ADAPTERS:  # annotations holding FieldInfo are not hashable
        _ADAPTERS[id(tp)] = (tp, TypeAdapter(tp))
    return _ADAPTERS[id(tp)][1]


def _valid(tp: Any, value: Any) -> bool:
    try:
        _adapter(tp).validate_python(value)
    except (ValidationError, TypeError):
        return False
    return True


def _valid_model(cls: type[BaseModel], value: dict) -> bool:
    try:
        cls.model_validate(value)
    except ValidationError:
        return False
    return True


__all__ = ["FRAME_KEYS", "Walk", "form_id", "forms", "json_data"]
