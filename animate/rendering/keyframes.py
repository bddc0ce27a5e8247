"""Image keyframes: `keyframes: {0: first.png, 15: last.png}` and `init_image:` through SparseCtrl.

A clip with keyframes renders with diffusers' AnimateDiffSparseControlNetPipeline, built from the clip's loaded
stack (`from_pipe`: the base model and motion adapter are not loaded again) with an RGB SparseCtrl model (a hub
id, a diffusers folder or a single .safetensors file). Each image is fitted to the clip's size (cover, contain
or stretch, the pose fitting code) before the pipeline sees it, so diffusers' own resize does nothing.

What that pipeline can't do is refused when the script is resolved (one line each): a keyframe past the clip,
prompt travel, pose guidance, loops and context windows (it has no FreeNoise: the clip is one window).
"""
from __future__ import annotations

from typing import Any

from animate.errors import ConfigError, ModelError
from animate.util.hashing import content_hash_or_none
from animate.models.sources import Source
from animate.rendering.fastpaths import derived_pipeline
from animate.rendering.loading import load_control_model
from motion.pose.fit import fit_image
import contextlib
from animate.models.configs import read_config
from animate.models.family import motion_max_frames
from animate.rendering.conditioning import Conditioning
from animate.util.hashing import source_identity


# ---------------------------------------------------------------- resolution (no model, no image decoded)


# ---------------------------------------------------------------- checks before anything loads

def check_keyframes(spec, label: str, *, motion_max: int) -> None:
    """Every keyframe image opens and decodes; the clip fits one window of the motion adapter and of the
    SparseCtrl model; a SparseCtrl folder whose config is readable is an RGB one."""
    from PIL import Image, UnidentifiedImageError  # media library: loaded on use

    kf = spec.keyframes
    for k, path in kf.images.items():
        try:
            with Image.open(path) as im:
                im.load()
        except Image.DecompressionBombError as exc:  # a header that claims far more pixels than the file holds
            raise ConfigError(f"keyframes[{k}]: image {path} is too large to decode safely ({_reason(exc)})",
                              where=label, hint="resize it to the clip's size (or near it) and save it again") from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ConfigError(f"keyframes[{k}]: cannot read image {path} ({_reason(exc)})", where=label,
                              hint="give a PNG, JPEG or WebP image file") from None
    config = sparsectrl_config(kf.sparsectrl)
    limit = min(motion_max, int(config.get("motion_max_seq_length", motion_max)))
    if spec.frames > limit:
        raise ConfigError(f"keyframes: {spec.frames} frames is more than the {limit} the motion modules take in "
                          "one window, and diffusers' SparseCtrl pipeline has no context windows", where=label,
                          hint=f"use at most {limit} frames for a keyframe clip")
    if config and not config.get("use_simplified_condition_embedding", True):
        raise ModelError(f"sparsectrl: {kf.sparsectrl.describe()} takes drawn conditions (a scribble model), "
                         "not RGB images", where=label, hint="use an RGB SparseCtrl model such as sparsectrl-rgb "
                         "(guoyww/animatediff-sparsectrl-rgb)")


def sparsectrl_config(src: Source) -> dict:
    """The SparseCtrl model's config.json when it can be read without loading it, else {}."""
    return read_config(src, "config.json") or {}


def _reason(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:160]


# ---------------------------------------------------------------- rendering

def keyframe_images(spec) -> list:
    """The keyframe images fitted to the clip's size (RGB PIL images, in frame order)."""
    import numpy as np  # media library: loaded on use
    from PIL import Image  # media library: loaded on use

    kf = spec.keyframes
    out = []
    for k in sorted(kf.images):
        with Image.open(kf.images[k]) as im:
            rgb = np.asarray(im.convert("RGB"))
        out.append(Image.fromarray(fit_image(rgb, spec.width, spec.height, kf.fit)))
    return out


def keyframe_kwargs(spec, images: list | None = None) -> dict[str, Any]:
    """The SparseCtrl arguments of the pipeline call: images, the frames they pin, the scale (a float: the
    pipeline refuses an int)."""
    return {"conditioning_frames": images if images is not None else keyframe_images(spec),
            "controlnet_frame_indices": sorted(spec.keyframes.images),
            "controlnet_conditioning_scale": float(spec.keyframes.scale)}


def sparse_pipeline(renderer, stack, spec):
    """AnimateDiffSparseControlNetPipeline sharing every component of the stack's pipeline."""
    import torch  # torch stack: kept out of light commands
    from diffusers import AnimateDiffSparseControlNetPipeline  # torch stack: kept out of light commands

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
    from diffusers import SparseControlNetModel  # torch stack: kept out of light commands

    src: Source = spec.keyframes.sparsectrl
    key = ("sparsectrl",) + src.key()
    net = stack.controlnets.get(key)
    if net is not None:
        return net
    net = load_control_model(renderer, stack, SparseControlNetModel, src, "sparsectrl", "SparseCtrl model",
                             fix="use an SD1.5 SparseCtrl RGB model such as sparsectrl-rgb")
    if not net.config.use_simplified_condition_embedding:
        raise ModelError(f"SparseCtrl model {src.describe()} takes drawn conditions (a scribble model), not RGB "
                         "images", where="sparsectrl", hint="use an RGB SparseCtrl model such as sparsectrl-rgb")
    renderer.count_load("sparsectrl")
    net.to(renderer.device)
    stack.controlnets[key] = net
    return net


def keyframe_rng(spec, device: str):
    """The global random state the keyframe encode draws from, seeded with the clip's seed for the call and
    given back afterwards. diffusers' SparseCtrl pipeline samples the keyframes' VAE latents without a
    generator (from the global RNG), so without this the same clip would come out differently each time."""

    import torch  # torch stack: kept out of light commands

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


def content_hashes(spec) -> dict[str, str | None]:
    """frame → SHA-256 of its keyframe image (the render key holds them, never the paths: same name, new picture,
    new frames; the same pictures in another folder, the same frames). None for an image that cannot be read."""
    return {str(k): content_hash_or_none(path) for k, path in sorted(spec.keyframes.images.items())}


class SparseKeyframes(Conditioning):
    """`keyframes:` (and `init_image:`): images pinning frames through SparseCtrl
    (AnimateDiffSparseControlNetPipeline, one window: its clip's context is set on the stack's shared UNet)."""

    field = "keyframes"

    def check(self, spec, label: str) -> None:
        check_keyframes(spec, label, motion_max=motion_max_frames(spec.motion_adapter))

    def key(self, spec, identity: dict) -> None:
        keyframes = identity["keyframes"]
        identity["keyframes"] = {**keyframes, "sparsectrl": source_identity(keyframes["sparsectrl"]),
                                 "images": content_hashes(spec)}

    def models(self, spec) -> list:
        return [("keyframes.sparsectrl", spec.keyframes.sparsectrl)]

    def pipeline(self, renderer, stack, spec, pipe):
        return sparse_pipeline(renderer, stack, spec)

    def arguments(self, spec, inputs, kwargs: dict) -> dict:
        return {**kwargs, **keyframe_kwargs(spec)}


KEYFRAMES = SparseKeyframes()
