"""The sub-specs of a resolved ClipSpec as plain frozen dataclasses: every option filled in, paths absolute, model
sources resolved. They are what ClipSpec holds and what every phase reads (by attribute); their JSON form is
written and read by `animate.spec.clipspec` (`ClipSpec.to_dict`/`from_dict`), where each field keeps the name,
the value and the place in the record it had when these were dicts.

Their script-side counterparts, with the checks and defaults, are the pydantic models in `animate.spec.subspecs`;
each dataclass here holds every field of its model (checked below), plus the resolved model source."""
from __future__ import annotations

from dataclasses import dataclass, fields

from animate.models.sources import Source
from animate.spec import subspecs

AdapterWeight = float | tuple[float, float] | dict[float, float]  # a number, a (start, end) ramp, {progress: weight}


@dataclass(frozen=True)
class Adapter:
    """One LoRA mixed by `set_adapters`: its label, source, slot (lcm, motion or style) and weight."""

    name: str
    source: Source
    kind: str
    weight: AdapterWeight


@dataclass(frozen=True)
class Pose:
    """ControlNet OpenPose guidance (the fields in the order records hold them: `source` last)."""

    controlnet: Source
    scale: float | dict[float, float]  # or {progress: scale}
    start: float
    end: float
    fit: str
    kind: str | None
    source_fps: float | None
    overrun: str | None
    canvas: list[int] | None
    threshold: float | None
    smooth: bool | None
    complexity: int | None
    source: str | dict  # an absolute file or folder path, or keypoints written in the script: {frame: {...}}


@dataclass(frozen=True)
class Context:
    """FreeNoise context windows; length and overlap None: chosen from the motion adapter at render time."""

    length: int | None
    overlap: int | None
    weighting: str
    noise: str
    blend: str


@dataclass(frozen=True)
class FreeInit:
    iters: int
    method: str
    fast: bool


@dataclass(frozen=True)
class Keyframes:
    """Image keyframes through SparseCtrl: {frame: absolute image path}, in frame order."""

    images: dict[int, str]
    scale: float
    fit: str
    sparsectrl: Source


@dataclass(frozen=True)
class InitVideo:
    """Video-to-video from `source` (an absolute file or folder path)."""

    source: str
    strength: float
    fps: float | None
    start: float
    fit: str
    enforce_inference_steps: bool


@dataclass(frozen=True)
class Refine:
    scale: float
    strength: float
    steps: int | None


# Each holds every field of its script model, and only those (plus its model source): an option added to the
# script must be added here too, or it would be dropped between the script and the renderer.
for _cls, _model, _source in ((Pose, subspecs.PoseSpec, "controlnet"), (Context, subspecs.ContextSpec, None),
                              (FreeInit, subspecs.FreeInitSpec, None),
                              (Keyframes, subspecs.KeyframesSpec, "sparsectrl"),
                              (InitVideo, subspecs.InitVideoSpec, None), (Refine, subspecs.RefineSpec, None)):
    if {f.name for f in fields(_cls)} != set(_model.model_fields) | ({_source} if _source else set()):
        raise TypeError(f"{_cls.__name__} must hold every field of {_model.__name__}")
