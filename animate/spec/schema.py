"""The script schema: pydantic models, frozen, unknown keys forbidden. A script is `ScriptModel`; a clip,
`defaults:` and a preset are `ClipFields` (every field optional: resolution fills the gaps in layers)."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag,
                      create_model, field_validator, model_validator)
from pydantic_core import PydanticCustomError

from .clipspec import PLAIN_TYPES
from .values import AdapterName, ClipName, Data, Frame, OutputName, Prompt, Range, Schedule, Seed, Text, Weight, show

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
    sha256: Text | None = None  # local files and folders: checked before loading


SourceValue = Union[Text, SourceSpec]
SOURCE_OPTIONS = tuple(name for name in SourceSpec.model_fields if name != "source")


def options_beside_source(data: Any) -> Any:
    """`{name, source, sha256, revision, weight_name, ...}`: the source's options written beside `source:`, as
    people write them, folded into the nested form `source: {source, sha256, ...}` that the rest reads. An
    option given both ways with two values is refused by the nested form's own check."""
    if not isinstance(data, dict) or not any(key in data for key in SOURCE_OPTIONS):
        return data
    options = {key: data[key] for key in SOURCE_OPTIONS if key in data}
    rest = {key: value for key, value in data.items() if key not in SOURCE_OPTIONS}
    source = rest.get("source")
    if source is None:  # the name is the source (a registry name)
        source = rest.get("name")
    if isinstance(source, dict):
        twice = sorted(key for key in options if key in source and source[key] != options[key])
        if twice:
            raise PydanticCustomError("source_option_twice", "{key} is given beside `source:` and inside it, with "
                                      "two values; keep one", {"key": twice[0]})
        rest["source"] = {**source, **options}
    else:
        rest["source"] = {"source": source, **options}
    return rest


class WeightRamp(Frozen):
    """A weight that moves linearly from `start` (first denoising step) to `end` (last step)."""

    start: Weight
    end: Weight


def _weight_kind(value: Any) -> str:
    # One branch per shape, so a mistake in a schedule is reported as a schedule's, not as a missing `start`.
    if isinstance(value, WeightRamp):  # when a validated clip is dumped again
        return "Ramp"
    if isinstance(value, dict):
        return "Ramp" if value and {str(k) for k in value} <= {"start", "end"} else "Schedule"
    return "Number"


def Scheduled(value: Any, ramp: Any = None) -> Any:
    """A number, or a piecewise-linear {progress: number} schedule (and a {start, end} ramp where given)."""
    branches = [Annotated[value, Tag("Number")], Annotated[Schedule(value), Tag("Schedule")]]
    if ramp is not None:
        branches.insert(1, Annotated[ramp, Tag("Ramp")])
    return Annotated[Union[tuple(branches)], Discriminator(_weight_kind)]


class AdapterSpec(Frozen):
    """One LoRA mixed at `weight` (a number, {start, end} over the denoising steps, or a piecewise-linear
    schedule {progress: weight} with progress 0.0 at the first step and 1.0 at the last); `kind` says which
    slot it fills (lcm, motion or style)."""

    name: AdapterName
    source: SourceValue | None = None
    weight: Scheduled(Weight, WeightRamp) = 1.0
    kind: Literal["lcm", "motion", "style"] | None = None

    beside_source: ClassVar[tuple] = SOURCE_OPTIONS  # also accepted at this level (unknown-field hints list them)

    @model_validator(mode="before")
    @classmethod
    def _fold_source_options(cls, data):
        return options_beside_source(data)


def _first_repeat(values) -> Any:
    """The first value of a list that appeared earlier in it, else None."""
    if isinstance(values, list):
        for i, value in enumerate(values):
            if value in values[:i]:
                return value
    return None


class PoseSpec(Frozen):
    """ControlNet OpenPose guidance."""

    source: Text | dict[Frame, dict[str, Data]]
    controlnet: SourceValue = "openpose"
    scale: Scheduled(Range(StrictFloat, 0, 2)) = 1.0  # or {progress: scale}
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


class ContextSpec(Frozen):
    """FreeNoise context windows: `length` frames at a time, neighbours sharing `overlap` frames, blended by
    `weighting`; `noise` says how the initial noise of later windows relates to the first's; `blend` says where
    windows are blended: in every motion module (`motion`, diffusers' FreeNoise) or on the UNet's output, the
    whole UNet denoising one window at a time (`unet`: memory bounded by the window). Unset length: one window
    when the clip fits the motion adapter, else 16; unset overlap: a quarter of the length; unset blend (`auto`):
    `unet` from 128 frames."""

    length: Range(StrictInt, 2, 128) | None = None
    overlap: Range(StrictInt, 0, 127) | None = None
    weighting: Literal["flat", "pyramid", "delayed_reverse_sawtooth"] = "pyramid"
    noise: Literal["shuffle_context", "repeat_context", "random"] = "shuffle_context"
    blend: Literal["auto", "motion", "unet"] = "auto"

    @model_validator(mode="after")
    def _overlap_below_length(self):
        if self.length is not None and self.overlap is not None and self.overlap >= self.length:
            raise PydanticCustomError("context_overlap", "overlap ({overlap}) must be less than length ({length}); "
                                      "windows must advance", {"overlap": self.overlap, "length": self.length})
        return self


class FreeInitSpec(Frozen):
    """FreeInit: denoise `iters` times, each time re-noising the result's low frequencies (`method` filter);
    `fast` runs the early iterations with fewer steps (coarse to fine). Costs about `iters` × the steps."""

    iters: Range(StrictInt, 1, 10) = 3
    method: Literal["butterworth", "ideal", "gaussian"] = "butterworth"
    fast: StrictBool = False


class KeyframesSpec(Frozen):
    """Image keyframes through SparseCtrl: `images` {frame: image file}, the SparseCtrl `scale`, and how each
    image is fitted to the clip's size (cover crops, contain letterboxes, stretch distorts)."""

    images: Annotated[dict[Frame, Text], Field(min_length=1, max_length=1024)]
    scale: Range(StrictFloat, 0, 2) = 1.0
    fit: Literal["contain", "cover", "stretch"] = "cover"


def _keyframes_kind(value: Any) -> str:
    # `{0: a.png, 15: b.png}` is the short form; a mapping with `images` is the long one.
    if isinstance(value, KeyframesSpec) or isinstance(value, dict) and "images" in value:
        return "Options"
    return "Images"


Keyframes = Annotated[Union[Annotated[Annotated[dict[Frame, Text], Field(
    min_length=1, max_length=1024, json_schema_extra={"propertyNames": {"pattern": "^[0-9]+$"}})], Tag("Images")],
                            Annotated[KeyframesSpec, Tag("Options")]], Discriminator(_keyframes_kind)]
class InitVideoSpec(Frozen):
    """Video-to-video: start from a source video (or a folder of frames) instead of noise. `strength` is how
    much of the schedule re-noises it (0: the source, 1: all noise); `enforce_inference_steps` (default) makes
    the clip's `steps` the denoising steps run, false runs int(steps × strength) of them as diffusers does.
    `fps` is the clock of a folder of frames (default: the clip's fps) or overrides a video's timestamps;
    `start` is the second of the source the clip starts at; `fit: pad` places the source unscaled and crops
    the output back to its size (see docs/editing.md)."""

    source: Text
    strength: Range(StrictFloat, 0, 1, lo_open=True) = 0.6
    fps: Range(StrictFloat, 0, 240, lo_open=True) | None = None
    start: Range(StrictFloat, 0, 86_400) = 0.0
    fit: Literal["contain", "cover", "stretch", "pad"] = "contain"
    enforce_inference_steps: StrictBool = True


class RefineSpec(Frozen):
    """A second video-to-video pass over the first pass's frames at `scale` × the size (rounded to 8), in the
    same run; `steps` unset: the clip's steps."""

    scale: Range(StrictFloat, 1, 4) = 1.5
    strength: Range(StrictFloat, 0, 1, lo_open=True) = 0.4
    steps: Range(StrictInt, 1, 200) | None = None


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
