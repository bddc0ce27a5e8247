"""What a Renderer keeps per model stack (the pipeline, its adapters and ControlNets) and what one clip gives back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from animate.spec import ClipSpec


@dataclass
class Stack:
    """A loaded pipeline and what has been loaded into it."""

    pipe: Any
    base_scheduler_config: dict
    adapters: dict = field(default_factory=dict)  # Source.key() → internal adapter name
    mixer: Any = None
    controlnets: dict = field(default_factory=dict)  # Source.key() → ControlNetModel
    decode_dtype: Any = None  # the VAE's dtype (decode_dtype)


@dataclass
class ClipResult:
    frames: np.ndarray  # uint8 F×H×W×3
    spec: ClipSpec
    timings: dict
    info: dict
    float_frames: np.ndarray | None = None  # [0,1] float32, kept only when asked (tests, metrics)
