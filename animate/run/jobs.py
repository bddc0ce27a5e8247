"""Jobs: each resolved ClipSpec planned once into what it needs — its render key, the outputs to write, their
paths and keys, and what is already done.

Identity:
- the **render key** hashes exactly what determines the frames: the base model, motion adapter, adapters (with
  their weights or weight ramps and kinds), UNet, ControlNet and SparseCtrl model, each as a hub id with its
  revision and file, or as the content (SHA-256) of its local file or folder and of its local `config:` folder; the
  scheduler, steps, guidance, frames, width, height, seed, prompts (text or travel keyframes, head, tail,
  interpolation), negative prompts, the compute dtype, and for pose guidance the pose settings, the content of the
  pose source and the clip's fps (pose videos are sampled by time); for image keyframes their settings and the
  content of every keyframe image; for video-to-video the init_video and refine settings, the content of the source
  video and the clip's fps. No path is in it: a model kit, a script with its inputs or the output root moved or
  copied elsewhere keeps its keys. It leaves out the clip's name, the adapters' names, its outputs, the script path,
  the preset name (its values are in the fields above), the sources' `sha256` pins and registry roles, and the speed
  knobs `fuse` and `decode_chunk`, which change frames only by float rounding.
- an **output key** is the render key plus the format, its options and the fps.
- the **spec hash** covers the whole resolved spec as the sidecar records it (paths included, for people) and the
  models' content: when it changes but the render key does not (a moved script or model), only the sidecar and the
  manifest line are rewritten.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from animate.util.hashing import content_hash_or_none
from animate.outputs.layout import Manifest, OutputLayout, canonical_json, hash_resolved, measure
from animate.spec.clipspec import labeled_sources
from animate.encode import extension
from motion.context import resolved_blend
from animate.rendering.variants import active
from animate.util.hashing import source_identity

# Fields of ClipSpec.to_dict() that do not change a single rendered frame.
NOT_IN_RENDER_KEY = ("name", "multi_seed", "outputs", "script", "preset", "fuse", "decode_chunk", "fps")
KEY_CHARS = 32
# Optional fields added after render keys were first written (left out of the key while unset).
ADDED_OPTIONAL = ("keyframes", "init_video", "refine", "unet")


def _digest(data) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()[:KEY_CHARS]


def model_sources(spec) -> list:
    return [src for _, _, src in labeled_sources(spec)]


def source_content(src) -> str | None:
    """A local source's content: its file (or `weight_name` in its folder), else its whole folder — the digest its
    `sha256:` pin names. None for a hub id."""
    if src.kind == "hub":
        return None
    return content_hash_or_none(src.local_file() or src.ref)


def fingerprints(spec) -> dict[str, str | None]:
    """Each local model's content, by the source as people read it (the spec hash carries them)."""
    return {src.describe(): source_content(src) for src in model_sources(spec) if src.kind != "hub"}


def spec_record(spec) -> dict:
    """The resolved spec as sidecars and output metadata embed it (without the script path)."""
    data = spec.to_dict()
    data.pop("script", None)
    return _without_unset_additions(data)


def _without_unset_additions(data: dict) -> dict:
    """Leave out the fields added later while unset: records and render keys from before them stay valid
    (ClipSpec.from_dict fills them in)."""
    for name in ADDED_OPTIONAL:
        if data.get(name) is None:
            data.pop(name, None)
    context = data.get("context")
    if isinstance(context, dict) and "blend" in context:
        # The blend as it runs, and only when it is the UNet's: a clip blended in the motion modules keeps the
        # record and key it had before `blend` existed, and a long clip that `auto` now blends in the UNet gets
        # a new key (its frames differ).

        blend = resolved_blend(data["frames"], context["blend"])
        data["context"] = {k: v for k, v in context.items() if k != "blend"}
        if blend == "unet":
            data["context"]["blend"] = blend
    return data


def spec_hash(spec, record: dict | None = None) -> str:
    """One hash of the whole resolved spec and its models' content: the manifest and sidecar carry it."""
    return hash_resolved({**(record or spec_record(spec)), "fingerprints": fingerprints(spec)})


def render_key(spec, dtype: str) -> str:
    return _digest(render_identity(spec, dtype))


def render_identity(spec, dtype: str) -> dict:
    """What the render key hashes: plain data without a single path."""
    data = {k: v for k, v in spec.to_dict().items() if k not in NOT_IN_RENDER_KEY}
    # An adapter's name is a label (PEFT loads it under its own name); its source, weight, kind and order count.
    data["adapters"] = [{k: source_identity(v) if k == "source" else v for k, v in adapter.items() if k != "name"}
                        for adapter in data["adapters"]]
    data["model"], data["motion_adapter"] = source_identity(data["model"]), source_identity(data["motion_adapter"])
    _without_unset_additions(data)
    if data.get("unet") is not None:
        data["unet"] = source_identity(data["unet"])
    for conditioning in active(spec):  # pose, keyframes, init video: their sources by content, and the fps
        conditioning.key(spec, data)
    data["dtype"] = dtype
    return data


def output_key(render: str, fmt: str, options: dict, fps: float) -> str:
    return _digest({"render_key": render, "format": fmt, "options": options, "fps": fps})


def output_paths(layout: OutputLayout, spec) -> dict[str, Path]:
    """Format → the path it writes (a folder for frame sequences)."""

    paths = {}
    for fmt in spec.outputs:
        ext, folder = extension(fmt)
        paths[fmt] = layout.folder(spec.stem) if folder else layout.file(spec.stem, ext.lstrip("."))
    return paths


@dataclass
class Job:
    """One clip at one seed, planned: what to render, what to encode, where it goes."""

    spec: object
    render_key: str
    spec_hash: str
    record: dict
    paths: dict[str, Path]
    output_keys: dict[str, str]
    encode: list[str] = field(default_factory=list)  # formats to write now
    kept: dict[str, dict] = field(default_factory=dict)  # formats already written: manifest output records
    needs_record: bool = True  # the sidecar and manifest line must be (re)written
    stored: bool = False  # the frame store holds this render key
    force: bool = False

    @property
    def stem(self) -> str:
        return self.spec.stem

    @property
    def status(self) -> str:
        """render (denoise), encode (frames from the store), record (sidecar only) or done."""
        if self.encode and (self.force or not self.stored):
            return "render"
        if self.encode:
            return "encode"
        return "record" if self.needs_record else "done"


def _recorded_output(manifest: Manifest, entry: dict | None, fmt: str, okey: str, path: Path) -> dict | None:
    """The manifest's record of an output when it was written with this output key and is still intact."""
    rec = ((entry or {}).get("outputs") or {}).get(fmt)
    if not isinstance(rec, dict) or rec.get("output_key") != okey:
        return None
    try:
        if not path.exists() or measure(path) != rec.get("size"):
            return None
    except OSError:
        return None
    return rec


def plan_job(spec, layout: OutputLayout, manifest: Manifest, store, *, dtype: str, force: bool = False) -> Job:
    rkey = render_key(spec, dtype)
    record = spec_record(spec)
    shash = spec_hash(spec, record)
    paths = output_paths(layout, spec)
    sidecar = layout.sidecar(spec.stem)  # checked now: a planted symlink is refused before anything renders
    okeys = {fmt: output_key(rkey, fmt, spec.outputs.get(fmt) or {}, spec.fps) for fmt in paths}
    entry = manifest.entries().get(spec.stem)
    kept = {}
    if not force:
        for fmt, path in paths.items():
            rec = _recorded_output(manifest, entry, fmt, okeys[fmt], path)
            if rec is not None:
                kept[fmt] = rec
    encode = [fmt for fmt in paths if fmt not in kept]
    needs_record = bool(encode) or force or entry is None or entry.get("spec_hash") != shash \
        or set((entry.get("outputs") or {})) != set(paths) or not sidecar.is_file()
    return Job(spec=spec, render_key=rkey, spec_hash=shash, record=record, paths=paths, output_keys=okeys,
               encode=encode, kept=kept, needs_record=needs_record, stored=store.has(rkey), force=force)


def plan_jobs(specs: list, layout: OutputLayout, manifest: Manifest, store, *, dtype: str,
              force: bool = False) -> list[Job]:
    """Every spec planned, clips sharing a model stack next to each other (each stack loads once)."""
    jobs = [plan_job(spec, layout, manifest, store, dtype=dtype, force=force) for spec in specs]
    first_seen: dict = {}
    for job in jobs:
        first_seen.setdefault(stack_key(job.spec), len(first_seen))
    return sorted(jobs, key=lambda job: first_seen[stack_key(job.spec)])


def stack_key(spec) -> tuple:
    return (spec.model.key(), spec.motion_adapter.key(), spec.unet.key() if spec.unet else None)
