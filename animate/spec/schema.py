"""The script schema: pydantic models, frozen, unknown keys forbidden. A script is `ScriptModel`; a clip,
`defaults:` and a preset are `ClipFields` (every field optional: resolution fills the gaps in layers)."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import (Field, StrictFloat, create_model, field_validator)
from pydantic_core import PydanticCustomError

from animate.spec.clipspec import PLAIN_TYPES
from animate.spec.subspecs import (AdapterSpec, ContextSpec, FreeInitSpec, Frozen, InitVideoSpec, Keyframes,  # noqa: F401
                                   KeyframesSpec, PoseSpec, RefineSpec, SourceSpec, SourceValue, WeightRamp)
from animate.spec.values import (ClipName, Data, OutputName, Prompt, Range, Seed, Text,
                                 show)


def _first_repeat(values) -> Any:
    """The first value of a list that appeared earlier in it, else None."""
    if isinstance(values, list):
        for i, value in enumerate(values):
            if value in values[:i]:
                return value
    return None


class _ClipLayer(Frozen):
    """The clip fields that are more than one value; ClipFields adds the plain ones."""

    preset: Text | Annotated[list[Text], Field(min_length=1, max_length=8)] | None = None  # later ones win
    description: str | None = None  # presets only: one line shown by `animate presets`
    model: SourceValue | None = None
    motion_adapter: SourceValue | None = None
    adapters: Annotated[list[AdapterSpec], Field(max_length=64)] | None = None
    seed: Seed | Annotated[list[Seed], Field(min_length=1, max_length=1000)] | None = None
    prompt: Prompt | None = None
    negative: Prompt | None = None
    outputs: Annotated[list[OutputName], Field(min_length=1)] | \
        Annotated[dict[OutputName, dict[str, Data] | None], Field(min_length=1)] | None = None
    pose: PoseSpec | None = None
    context: ContextSpec | None = None
    free_init: FreeInitSpec | None = None
    keyframes: Keyframes | None = None  # image keyframes (SparseCtrl): {frame: image} or {images, scale, fit}
    init_image: Text | None = None  # the image of frame 0 (a keyframe at 0)
    sparsectrl: SourceValue | None = None  # the SparseCtrl RGB model keyframes go through
    init_video: InitVideoSpec | None = None
    refine: RefineSpec | None = None
    unet: SourceValue | None = None  # a full UNet checkpoint for the base (SDXL-Lightning's *_unet.safetensors)

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
            raise ValueError(f"seed {dup} is listed twice (got {show(v)})")
        return v

    @field_validator("prompt", "negative")
    @classmethod
    def _keyframes(cls, v):
        if isinstance(v, dict) and not v:
            raise ValueError('keyframe mapping is empty; give at least {0: "..."}')
        return v


# Every field a clip (or `defaults`, or a preset) may set: the fields above, and each plain ClipSpec field
# (scheduler, steps, width ...) as declared there, optional here.
ClipFields = create_model("ClipFields", __base__=_ClipLayer, __module__=__name__,
                          __doc__="Every field a clip (or `defaults`, or a preset) may set.",
                          **{name: (Optional[kind], None) for name, kind in PLAIN_TYPES.items()})


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


def cross_checks(data: dict) -> list[tuple[tuple, str]]:
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


def json_schema() -> dict:
    """The JSON Schema of a script (for editors)."""
    return ScriptModel.model_json_schema()
