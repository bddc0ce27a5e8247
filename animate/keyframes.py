"""Image keyframes: `keyframes: {0: first.png, 15: last.png}` and `init_image:` through SparseCtrl.

A clip with keyframes renders with diffusers' AnimateDiffSparseControlNetPipeline, built from the clip's loaded
stack (`from_pipe`: the base model and motion adapter are not loaded again) with an RGB SparseCtrl model (a hub
id, a diffusers folder or a single .safetensors file). Each image is fitted to the clip's size (cover, contain
or stretch, the pose fitting code) before the pipeline sees it, so diffusers' own resize does nothing.

What that pipeline can't do is refused when the script is resolved (one line each): a keyframe past the clip,
prompt travel, pose guidance, loops and context windows (it has no FreeNoise: the clip is one window).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError, ModelError
from .models import Source
from .spec.resolve import local_path

DEFAULT_SPARSECTRL = "sparsectrl-rgb"  # models.KNOWN_MODELS: guoyww/animatediff-sparsectrl-rgb
DEFAULTS = {"scale": 1.0, "fit": "cover"}  # schema.KeyframesSpec


# ---------------------------------------------------------------- resolution (no model, no image decoded)

def resolve_keyframes(f: dict, *, frames: int, base_dir: Path, src: Callable, sites: Callable, origin: dict,
                      problems: list[str]) -> dict | None:
    """The ClipSpec `keyframes` value of a clip's merged fields: {images: {frame: absolute path}, scale, fit,
    sparsectrl: Source}, or None without keyframes. Problems are appended as located lines."""
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
    return {"images": out, "scale": float(options["scale"]), "fit": options["fit"], "sparsectrl": sparsectrl}


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


# ---------------------------------------------------------------- checks before anything loads

def check_keyframes(spec, label: str, *, motion_max: int) -> None:
    """Every keyframe image opens and decodes; the clip fits one window of the motion adapter and of the
    SparseCtrl model; a SparseCtrl folder whose config is readable is an RGB one."""
    from PIL import Image, UnidentifiedImageError

    kf = spec.keyframes
    for k, path in kf["images"].items():
        try:
            with Image.open(path) as im:
                im.load()
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ConfigError(f"keyframes[{k}]: cannot read image {path} ({_reason(exc)})", where=label,
                              hint="give a PNG, JPEG or WebP image file") from None
    config = sparsectrl_config(kf["sparsectrl"])
    limit = min(motion_max, int(config.get("motion_max_seq_length", motion_max)))
    if spec.frames > limit:
        raise ConfigError(f"keyframes: {spec.frames} frames is more than the {limit} the motion modules take in "
                          "one window, and diffusers' SparseCtrl pipeline has no context windows", where=label,
                          hint=f"use at most {limit} frames for a keyframe clip")
    if config and not config.get("use_simplified_condition_embedding", True):
        raise ModelError(f"sparsectrl: {kf['sparsectrl'].describe()} takes drawn conditions (a scribble model), "
                         "not RGB images", where=label, hint="use an RGB SparseCtrl model such as sparsectrl-rgb "
                         "(guoyww/animatediff-sparsectrl-rgb)")


def sparsectrl_config(src: Source) -> dict:
    """The SparseCtrl model's config.json when it can be read without loading or downloading, else {}."""
    import json

    folders = [src.ref if src.kind == "folder" else None, src.config]
    if src.kind == "hub":
        from .models import hub_snapshot

        snapshot = hub_snapshot(src)
        folders.append(str(snapshot) if snapshot else None)
    for folder in folders:
        if folder and Path(folder, "config.json").is_file():
            try:
                data = json.loads(Path(folder, "config.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                return data
    return {}


def _reason(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:160]


# ---------------------------------------------------------------- rendering

def keyframe_images(spec) -> list:
    """The keyframe images fitted to the clip's size (RGB PIL images, in frame order)."""
    import numpy as np
    from PIL import Image

    from motion.pose.fit import fit_image

    kf = spec.keyframes
    out = []
    for k in sorted(kf["images"]):
        with Image.open(kf["images"][k]) as im:
            rgb = np.asarray(im.convert("RGB"))
        out.append(Image.fromarray(fit_image(rgb, spec.width, spec.height, kf["fit"])))
    return out


def keyframe_kwargs(spec, images: list | None = None) -> dict[str, Any]:
    """The SparseCtrl arguments of the pipeline call: images, the frames they pin, the scale (a float: the
    pipeline refuses an int)."""
    return {"conditioning_frames": images if images is not None else keyframe_images(spec),
            "controlnet_frame_indices": sorted(spec.keyframes["images"]),
            "controlnet_conditioning_scale": float(spec.keyframes["scale"])}


def sparse_pipeline(renderer, stack, spec):
    """AnimateDiffSparseControlNetPipeline sharing every component of the stack's pipeline."""
    import torch
    from diffusers import AnimateDiffSparseControlNetPipeline

    from .fastpaths import derived_pipeline

    net = load_sparsectrl(renderer, stack, spec)
    # from_pipe casts the shared components to its dtype (fp32 unless told): keep the run's; the VAE stays fp32.
    pipe = derived_pipeline(AnimateDiffSparseControlNetPipeline, stack.pipe, controlnet=net, torch_dtype=renderer.dtype)
    pipe.vae.to(dtype=torch.float32)
    _encode_in_vae_dtype(pipe.vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _encode_in_vae_dtype(vae) -> None:
    """The pipeline hands the VAE keyframe images in the SparseCtrl model's dtype (fp16 on GPUs) and wants the
    latents back in it, while our VAE runs in fp32: the encoder takes them in its own dtype and its moments go
    back out in theirs, as an all-fp16 pipeline would hand them on (both no-ops in fp32)."""
    if getattr(vae, "_animate_encode_cast", False):
        return
    last = vae.quant_conv if getattr(vae, "quant_conv", None) is not None else vae.encoder
    seen: dict = {}

    def cast_in(module, args):
        seen["dtype"] = args[0].dtype
        return (args[0].to(module.conv_in.weight.dtype),) + tuple(args[1:])

    def cast_out(module, args, output):
        return output.to(seen.get("dtype", output.dtype))

    vae.encoder.register_forward_pre_hook(cast_in)
    last.register_forward_hook(cast_out)
    vae._animate_encode_cast = True


def load_sparsectrl(renderer, stack, spec):
    """The clip's SparseCtrl model, loaded once per stack (as the pose ControlNets are)."""
    from diffusers import SparseControlNetModel

    from .renderer import load_control_model

    src: Source = spec.keyframes["sparsectrl"]
    key = ("sparsectrl",) + src.key()
    net = stack.controlnets.get(key)
    if net is not None:
        return net
    net = load_control_model(renderer, stack, SparseControlNetModel, src, "sparsectrl", "SparseCtrl model",
                             fix="use an SD1.5 SparseCtrl RGB model such as sparsectrl-rgb")
    if not net.config.use_simplified_condition_embedding:
        raise ModelError(f"SparseCtrl model {src.describe()} takes drawn conditions (a scribble model), not RGB "
                         "images", where="sparsectrl", hint="use an RGB SparseCtrl model such as sparsectrl-rgb")
    renderer._count("sparsectrl")
    net.to(renderer.device)
    stack.controlnets[key] = net
    return net


def keyframe_rng(spec, device: str):
    """The global random state the keyframe encode draws from, seeded with the clip's seed for the call and
    given back afterwards. diffusers' SparseCtrl pipeline samples the keyframes' VAE latents without a
    generator (from the global RNG), so without this the same clip would come out differently each time."""
    import contextlib

    import torch

    if not spec.keyframes:
        return contextlib.nullcontext()
    where = torch.device(device)

    @contextlib.contextmanager
    def seeded():
        if where.type == "cpu":
            fork = torch.random.fork_rng(devices=[])
        elif where.type == "cuda":
            fork = torch.random.fork_rng(devices=[where.index or 0])
        else:
            fork = torch.random.fork_rng(device_type=where.type)
        with fork:
            torch.manual_seed(spec.seed)
            yield

    return seeded()


def content_hashes(spec) -> dict[str, str]:
    """frame → SHA-256 of its keyframe image (the render key holds them: same name, new picture, new frames)."""
    from .jobs import content_hash

    return {str(k): content_hash(path) for k, path in sorted(spec.keyframes["images"].items())}
