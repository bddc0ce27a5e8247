"""The conditioning seam: every way a clip is conditioned beyond its text is one class behind this interface, in
its own module (pose ControlNet: `pose.py`, SparseCtrl keyframes: `keyframes.py`, video-to-video and refine:
`video_input.py`), listed once in `variants.CONDITIONINGS`. Checks, render keys, the renderer and the sidecar ask
the registry, so a new kind (another ControlNet type, an image adapter) is one module, its schema and its docs.

Each variant is switched on by one ClipSpec field, and says:
- `check`: what is wrong with the clip before anything loads (one line, naming the field);
- `key`: its part of the render key (paths become content hashes; plus what else its frames depend on);
- `models`: the models it adds to the stack, by field, so they are checked against the base and recorded;
- `inputs`: the conditioning it reads before the pipeline call (pose images, the source video's frames);
- `pipeline`: the pipeline variant it needs, built from the stack's components;
- `arguments`: its keyword arguments of the pipeline call;
- `record`: what it adds to the sidecar's `info`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from animate.models.sources import Source
    from animate.spec import ClipSpec


class Conditioning:
    """One kind of conditioning; the defaults are what a kind that does not need a hook does."""

    field: str = ""  # the ClipSpec field that switches it on

    def active(self, spec: ClipSpec) -> bool:
        return getattr(spec, self.field) is not None

    def check(self, spec: ClipSpec, label: str) -> None:
        """Raise one AnimateError for the first problem found without loading a model."""

    def key(self, spec: ClipSpec, identity: dict) -> None:
        """Rewrite this field of the render identity (`identity`, ClipSpec.to_dict() as the key sees it) so it
        holds no path, and add what else the frames depend on."""

    def models(self, spec: ClipSpec) -> list[tuple[str, Source]]:
        return []

    def inputs(self, spec: ClipSpec) -> Any:
        return None

    def pipeline(self, renderer, stack, spec: ClipSpec, pipe):
        return pipe

    def arguments(self, spec: ClipSpec, inputs: Any, kwargs: dict) -> dict:
        return kwargs

    def record(self, spec: ClipSpec) -> dict:
        return {}
