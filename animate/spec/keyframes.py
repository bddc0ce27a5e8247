"""Image keyframes as a script gives them, resolved into ClipSpec's form (no model, no image decoded),
and what diffusers' SparseCtrl pipeline cannot be combined with, as located problems."""
from __future__ import annotations
from pathlib import Path
from typing import Callable
from animate.spec.paths import local_path
from animate.spec.resolved import Keyframes


DEFAULT_SPARSECTRL = "sparsectrl-rgb"  # models.KNOWN_MODELS: guoyww/animatediff-sparsectrl-rgb


DEFAULTS = {"scale": 1.0, "fit": "cover"}  # schema.KeyframesSpec


def resolve_keyframes(f: dict, *, frames: int, base_dir: Path, src: Callable, sites: Callable, origin: dict,
                      problems: list[str]) -> Keyframes | None:
    """The ClipSpec `keyframes` value of a clip's merged fields (images by frame, as absolute paths), or None
    without keyframes. Problems are appended as located lines."""
    value, init = f.get("keyframes"), f.get("init_image")
    if value is None and init is None:
        return None
    value = dict(value or {})
    long_form = "images" in value
    images = dict(value["images"]) if long_form else value
    options = {**DEFAULTS, **{k: v for k, v in value.items() if long_form and k != "images" and v is not None}}
    layer = origin.get("keyframes", "clip")
    entries = {int(k): (path, ("keyframes", "images", k) if long_form else ("keyframes", k), layer)
               for k, path in images.items()}
    if init is not None:
        if 0 in entries:
            problems.append(f"{sites(('init_image',), origin.get('init_image', 'clip'))}: init_image and keyframes "
                            "both set frame 0; keep one of them")
        else:
            entries[0] = (init, ("init_image",), origin.get("init_image", "clip"))
    out = {}
    for k in sorted(entries):
        path, at, at_layer = entries[k]
        if k >= frames:
            problems.append(f"{sites(at, at_layer, key=at[-1] == k)}: keyframe {k} is past the last frame "
                            f"({frames - 1}); use keys below {frames} or raise `frames`")
            continue
        full, is_file = local_path(base_dir, path, exists=Path.is_file)
        if not is_file:
            problems.append(f"{sites(at, at_layer)}: no such image file: {path!r} (relative paths resolve "
                            "against the script's folder)")
            continue
        out[k] = full
    _refuse_combinations(f, frames, sites, layer, problems)
    sparsectrl = src(f.get("sparsectrl") or DEFAULT_SPARSECTRL, ("sparsectrl",), slot="sparsectrl",
                     layer=origin.get("sparsectrl", "clip"))
    return Keyframes(images=out, scale=float(options["scale"]), fit=options["fit"], sparsectrl=sparsectrl)


def _refuse_combinations(f: dict, frames: int, sites: Callable, layer: str, problems: list[str]) -> None:
    """What AnimateDiffSparseControlNetPipeline cannot do, each as one located line."""
    at = sites(("keyframes",), layer)
    for key in ("prompt", "negative"):
        if isinstance(f.get(key), dict):
            problems.append(f"{at}: image keyframes render without prompt travel (diffusers' SparseCtrl pipeline "
                            f"takes one prompt); give `{key}` as one text")
    if f.get("pose"):
        problems.append(f"{at}: image keyframes and pose guidance can't be combined (one ControlNet per clip); "
                        "drop `pose` or the keyframes")
    if f.get("init_video") is not None or f.get("refine") is not None:  # `refine: {}` is a refine pass too
        problems.append(f"{at}: image keyframes and video-to-video (`init_video`, `refine`) can't be combined "
                        "(each is its own diffusers pipeline); drop one of them")
    if f.get("loop"):
        problems.append(f"{at}: image keyframes can't loop (the loop rolls frames the keyframes are pinned to); "
                        "set loop: false")
    length = (f.get("context") or {}).get("length")
    if length is not None and length < frames:
        problems.append(f"{at}: image keyframes render the clip as one window (diffusers' SparseCtrl pipeline "
                        f"has no context windows), but context length is {length} for {frames} frames; "
                        "drop `context.length` or lower `frames`")
