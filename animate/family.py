"""Base-model families (SD1.5, SDXL; SSD-1B is SDXL-shaped) read from configs and checkpoint headers, never
by loading a model: which AnimateDiff pipeline renders a base, which motion adapters, LoRAs and UNets fit it,
its native size, and what the SDXL pipeline cannot do.

Where a family is read from:
- a diffusers folder or hub snapshot: `model_index.json` (a second text encoder) and `unet/config.json`
  (`addition_embed_type: text_time`, cross-attention 2048);
- a single checkpoint: its tensor names (`conditioner.embedders.1.*` is SDXL's second text encoder,
  `cond_stage_model.*` SD1.5's only one), or its `config:` folder;
- a hub id not in the cache: its config files, fetched (a few KB) only where the hub answers;
- motion adapters: the number of UNet blocks they are built for (SDXL and SSD-1B have three, SD1.5 four; the
  tiny kit's SD1.5 UNet two), from `config.json` or the file's tensor names.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ModelError

if TYPE_CHECKING:
    from .models import Source
    from .spec import ClipSpec

SD15, SDXL = "sd15", "sdxl"
LABELS = {SD15: "SD1.5", SDXL: "SDXL"}
NATIVE_SIZE = {SD15: 512, SDXL: 1024}
SDXL_BLOCKS = 3  # down blocks of an SDXL-shaped UNet (SDXL, SSD-1B); SD1.5 has four
# (block_out_channels, layers_per_block) of the UNet diffusers builds for a family's single checkpoint.
STANDARD_UNET = {SD15: ((320, 640, 1280, 1280), 2), SDXL: ((320, 640, 1280), 2)}
# Hub ids whose family is known even where neither the cache nor the hub can tell (offline `check`).
KNOWN_FAMILIES = {"stabilityai/stable-diffusion-xl-base-1.0": SDXL, "segmind/SSD-1B": SDXL,
                  "stabilityai/sdxl-turbo": SDXL, "emilianJR/epiCRealism": SD15,
                  "guoyww/animatediff-motion-adapter-sdxl-beta": SDXL,
                  "stable-diffusion-v1-5/stable-diffusion-v1-5": SD15, "runwayml/stable-diffusion-v1-5": SD15,
                  "guoyww/animatediff-motion-adapter-v1-5-2": SD15, "guoyww/animatediff-motion-adapter-v1-5-3": SD15,
                  "wangfuyun/AnimateLCM": SD15, "ByteDance/AnimateDiff-Lightning": SD15,
                  "latent-consistency/lcm-lora-sdv1-5": SD15, "latent-consistency/lcm-lora-sdxl": SDXL,
                  "ByteDance/SDXL-Lightning": SDXL}
KNOWN_PREFIXES = {"guoyww/animatediff-motion-lora-": SD15}  # the AnimateDiff motion LoRAs are SD1.5's


def known_family(src: Source) -> str | None:
    """The registry's family of a hub id (used where its files cannot be read: offline and not cached)."""
    if src.kind != "hub":
        return None
    return KNOWN_FAMILIES.get(src.ref) or next((f for p, f in KNOWN_PREFIXES.items() if src.ref.startswith(p)), None)
FIX = {SD15: {"motion_adapter": "animatediff-v1-5-2", "lora": "lcm-lora-sd15"},
       SDXL: {"motion_adapter": "animatediff-sdxl-beta", "lora": "lcm-lora-sdxl"}}
LIGHTNING_STEPS = re.compile(r"sdxl_lightning_(\d+)step")
SDXL_SCHEDULER = "lightning-xl"  # Euler, timestep_spacing="trailing": what SDXL-Lightning was distilled with


def label(family: str | None) -> str:
    return LABELS.get(family or "", "unknown")


# ---------------------------------------------------------------- reading configs without loading

def _json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hub_json(src: Source, filename: str) -> dict | None:
    """A small config file of a hub source: from the cache, else downloaded where the hub answers."""
    from huggingface_hub import try_to_load_from_cache

    from .models import hub_offline, hub_unreachable

    try:
        found = try_to_load_from_cache(src.ref, filename, revision=src.revision)
    except (OSError, ValueError):
        found = None
    if isinstance(found, str):
        return _json(Path(found))
    if hub_offline() or hub_unreachable() is not None:
        return None
    from huggingface_hub import constants, hf_hub_download

    try:  # the endpoint the probe answered (HF_ENDPOINT)
        return _json(Path(hf_hub_download(src.ref, filename, revision=src.revision, endpoint=constants.ENDPOINT)))
    except Exception:  # noqa: BLE001  no such file in the repo, gated, a transport error: the family stays unknown
        return None


def _config(src: Source, filename: str) -> dict | None:
    """`filename` (e.g. unet/config.json) of a base or adapter: its folder, its `config:` folder, or the hub."""
    if src.kind == "folder":
        found = _json(Path(src.ref) / filename)
        if found is not None:
            return found
    if src.config:
        if Path(src.config).is_dir():
            return _json(Path(src.config) / filename)
        from .models import HUB_ID, Source as _Source

        if HUB_ID.match(src.config):
            return _hub_json(_Source(ref=src.config, kind="hub"), filename)
    if src.kind == "hub":
        return _hub_json(src, filename)
    return None


def _keys(src: Source) -> list[str] | None:
    local = src.local_file()
    if local is None or local.suffix != ".safetensors" or not local.is_file():
        return None
    from .models import read_safetensors_keys

    return read_safetensors_keys(local)


def family_of_unet_config(config: dict) -> str:
    if config.get("addition_embed_type") == "text_time" or config.get("cross_attention_dim") == 2048:
        return SDXL
    return SD15


def family_of_checkpoint(keys: list[str]) -> str | None:
    """A single base checkpoint's family from its tensor names (None when it is not a base checkpoint)."""
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return SDXL
    if any(k.startswith("cond_stage_model.") for k in keys):
        return SD15
    if any(k.startswith("model.diffusion_model.label_emb.") for k in keys):  # SDXL's added embeddings
        return SDXL
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return SD15
    return None


@functools.lru_cache(maxsize=256)
def _base_family(src: Source) -> str | None:
    index = _config(src, "model_index.json")
    if index is not None and ("text_encoder_2" in index or "XL" in str(index.get("_class_name", ""))):
        return SDXL
    unet = _config(src, "unet/config.json")
    if unet is not None:
        return family_of_unet_config(unet)
    if index is not None:
        return SD15
    keys = _keys(src) if src.kind == "file" else None
    if keys is not None:
        found = family_of_checkpoint(keys)
        if found:
            return found
    return known_family(src)


def base_family(src: Source) -> str | None:
    """sd15 | sdxl for a base model, or None when nothing readable tells (an uncached hub id, offline)."""
    return _base_family(src)


def render_family(src: Source) -> str:
    """The family the renderer builds for: unknown bases render as SD1.5, as before families existed."""
    return base_family(src) or SD15


@functools.lru_cache(maxsize=256)
def native_size(src: Source) -> int | None:
    """The base's native width/height: the UNet's sample size × the VAE's scale (SDXL 1024, SD1.5 512)."""
    family = base_family(src)
    unet, vae = _config(src, "unet/config.json"), _config(src, "vae/config.json")
    if unet and unet.get("sample_size") and vae and vae.get("block_out_channels"):
        size = unet["sample_size"]
        size = size[0] if isinstance(size, (list, tuple)) else size
        return int(size) * 2 ** (len(vae["block_out_channels"]) - 1)
    return NATIVE_SIZE.get(family) if family else None


@functools.lru_cache(maxsize=256)
def adapter_blocks(src: Source) -> int | None:
    """How many UNet blocks a motion adapter is built for (its config, else its tensor names)."""
    config = _config(src, "config.json") if not (src.kind == "file" and not src.config) else None
    if config is not None and config.get("block_out_channels"):
        return len(config["block_out_channels"])
    keys = _keys(src)
    if keys is None:
        return None
    blocks = {int(m.group(1)) for k in keys for m in [re.match(r"down_blocks\.(\d+)\.motion_modules\.", k)] if m}
    return max(blocks) + 1 if blocks else None


def adapter_layers(src: Source) -> int | None:
    """Motion layers per block of a motion adapter (its config, else its tensor names)."""
    config = _config(src, "config.json") if not (src.kind == "file" and not src.config) else None
    if config is not None and config.get("motion_layers_per_block") is not None:
        layers = config["motion_layers_per_block"]
        return int(layers if isinstance(layers, int) else max(layers))
    keys = _keys(src)
    found = {int(m.group(1)) for k in keys or [] for m in [re.match(r"down_blocks\.\d+\.motion_modules\.(\d+)\.", k)]
             if m}
    return max(found) + 1 if found else None


def unet_shape(base: Source, family: str) -> tuple[tuple[int, ...], int]:
    """The base UNet's (block_out_channels, layers_per_block): its config, else the family's standard UNet (what
    diffusers builds for a single checkpoint without a config)."""
    config = _config(base, "unet/config.json")
    if config and config.get("block_out_channels"):
        return tuple(config["block_out_channels"]), int(config.get("layers_per_block", 2))
    return STANDARD_UNET[family]


def motion_misfit(adapter: Source, base: Source, family: str) -> str | None:
    """Why a motion adapter cannot be built into the base's UNet, or None. diffusers' UNetMotionModel.from_unet2d
    needs the same number of blocks and layers per block, and the motion modules' channels must match the UNet's
    blocks: that, not the family, decides whether they fit."""
    channels, layers = unet_shape(base, family)
    config = _config(adapter, "config.json") if not (adapter.kind == "file" and not adapter.config) else None
    own = tuple(config["block_out_channels"]) if config and config.get("block_out_channels") else None
    blocks = len(own) if own else adapter_blocks(adapter)
    if blocks is None:  # nothing readable (an uncached hub id, offline): the registry's family, if it knows
        known = known_family(adapter)
        if known is not None and known != family:
            return (f"{adapter.describe()} is an {label(known)} motion adapter but model {base.describe()} is "
                    f"{label(family)}")
        return None
    built_for = f"{blocks} blocks" + (f" of {list(own)} channels" if own else "")
    has = f"{len(channels)} blocks of {list(channels)} channels"
    if blocks != len(channels) or (own is not None and own != channels):
        return (f"{adapter.describe()} is built for a UNet with {built_for}, but model {base.describe()} "
                f"({label(family)}) has {has}")
    motion_layers = adapter_layers(adapter)
    if motion_layers is not None and motion_layers != layers:
        return (f"{adapter.describe()} has {motion_layers} motion layers per block, but model {base.describe()}'s "
                f"UNet has {layers} layers per block")
    return None


def controlnet_misfit(controlnet: Source, base: Source, family: str) -> str | None:
    """Why a ControlNet's residuals cannot be added to the base UNet's blocks (other channels), or None."""
    config = _config(controlnet, "config.json") if not (controlnet.kind == "file" and not controlnet.config) else None
    if not config or not config.get("block_out_channels"):
        return None
    channels, _ = unet_shape(base, family)
    own = tuple(config["block_out_channels"])
    if own != channels:
        return (f"{controlnet.describe()} is built for a UNet with {len(own)} blocks of {list(own)} channels, but "
                f"model {base.describe()} ({label(family)}) has {len(channels)} blocks of {list(channels)} channels")
    return None


def conditioning_models(spec: ClipSpec) -> list[tuple[str, Source]]:
    """The ControlNet-shaped models a clip adds to its base (pose ControlNet, SparseCtrl), with their fields."""
    found = []
    if spec.pose is not None and spec.pose.get("controlnet") is not None:
        found.append(("pose.controlnet", spec.pose["controlnet"]))
    if spec.keyframes is not None and spec.keyframes.get("sparsectrl") is not None:
        found.append(("keyframes.sparsectrl", spec.keyframes["sparsectrl"]))
    return found


def adapter_family(src: Source) -> str | None:
    """A label for messages only: fit is decided by shape (motion_misfit)."""
    blocks = adapter_blocks(src)
    if blocks is None:
        return known_family(src)
    return SDXL if blocks == SDXL_BLOCKS else SD15


def unet_file_family(src: Source) -> str | None:
    """A full UNet state dict's family (SDXL's carries the added text/time embedding)."""
    keys = _keys(src)
    if keys is None:
        return None
    if not any(k.startswith(("conv_in.", "down_blocks.")) for k in keys):
        return None
    return SDXL if any(k.startswith("add_embedding.") for k in keys) else SD15


def lightning_steps(spec: ClipSpec) -> int | None:
    """The step count an SDXL-Lightning UNet or LoRA was distilled for, read from its file name."""
    names = []
    if spec.unet is not None:
        names.append(spec.unet.weight_name or Path(spec.unet.ref).name)
    names += [src.weight_name or Path(src.ref).name for _, src, w, _ in spec.adapters if w != 0]
    for name in names:
        m = LIGHTNING_STEPS.search(name.lower())
        if m:
            return int(m.group(1))
    return None


# ---------------------------------------------------------------- pipelines

def pipeline_class(family: str):
    """The diffusers text-to-video pipeline of a family."""
    if family == SDXL:
        from diffusers import AnimateDiffSDXLPipeline

        return AnimateDiffSDXLPipeline
    from diffusers import AnimateDiffPipeline

    return AnimateDiffPipeline


def has_free_noise(pipe) -> bool:
    """FreeNoise (context windows, prompt travel) is a mixin of the SD1.5 pipelines only."""
    return hasattr(pipe, "enable_free_noise")


# ---------------------------------------------------------------- checks before anything loads

def check_family(spec: ClipSpec, label_: str) -> None:
    """Motion adapter and `unet:` against the base's family, and what the SDXL pipeline cannot do; one line
    each (LoRAs are checked with the LoRA slot checks, which read their headers)."""
    family = base_family(spec.model)
    if family is None:
        return
    where = f"{label_}: "
    misfit = motion_misfit(spec.motion_adapter, spec.model, family)
    if misfit:
        raise ModelError(misfit, where=f"{where}motion_adapter",
                         hint=f"use a motion adapter made for this base (for an {label(family)} base e.g. "
                              f"{FIX[family]['motion_adapter']}), or the base it was made for")
    for field_name, src in conditioning_models(spec):
        misfit = controlnet_misfit(src, spec.model, family)
        if misfit:
            raise ModelError(misfit, where=f"{where}{field_name}",
                             hint="use a ControlNet trained for this base model's family and shape")
    if spec.unet is not None:
        unet = unet_file_family(spec.unet)
        if unet is None and spec.unet.local_file() is not None and spec.unet.local_file().suffix == ".safetensors":
            raise ModelError(f"{spec.unet.describe()} holds no UNet weights (no conv_in / down_blocks tensors)",
                             where=f"{where}unet", hint="give a full UNet checkpoint such as "
                                                        "sdxl_lightning_4step_unet.safetensors")
        if unet is not None and unet != family:
            raise ModelError(f"{spec.unet.describe()} is an {label(unet)} UNet but model {spec.model.describe()} "
                             f"is {label(family)}", where=f"{where}unet",
                             hint=f"use an {label(family)} UNet checkpoint, or remove `unet:`")
    for i, (name, src, _, _) in enumerate(spec.adapters):  # LoRAs whose header could not be read (not cached)
        known = known_family(src)
        if known is not None and known != family:
            raise ModelError(f"{src.describe()} is an {label(known)} LoRA and cannot be applied to an {label(family)} "
                             f"model", where=f"{where}adapters[{i}] ({name})",
                             hint=f"use an {label(family)} LoRA (e.g. {FIX[family]['lora']}), or an {label(known)} "
                                  "base model")
    if family == SDXL:
        check_sdxl_features(spec, label_)


def check_sdxl_features(spec: ClipSpec, label_: str) -> None:
    """AnimateDiffSDXLPipeline has no FreeNoise (so no prompt travel, no context windows) and no ControlNet."""
    from .plan import motion_max_frames

    why = "diffusers' AnimateDiffSDXLPipeline has no FreeNoise"
    for field in ("prompt", "negative"):
        if isinstance(getattr(spec, field), dict):
            raise ConfigError(f"{field}: prompt travel (keyframes) is not supported with an SDXL base ({why})",
                              where=label_, hint=f"give `{field}` as one text, or use an SD1.5 base")
    length = spec.context["length"]
    max_frames = motion_max_frames(spec.motion_adapter)
    if (length is not None and length < spec.frames) or (length is None and spec.frames > max_frames):
        raise ConfigError(f"frames: {spec.frames} needs context windows, which an SDXL base cannot use ({why})",
                          where=label_, hint=f"use at most {max_frames} frames (the motion adapter's length) and no "
                                             "shorter context.length")
    if spec.pose is not None:
        raise ConfigError("pose: ControlNet pose guidance is not supported with an SDXL base (diffusers has no "
                          "AnimateDiff SDXL ControlNet pipeline)", where=label_,
                          hint="remove `pose:`, or use an SD1.5 base")
    for field, pipeline in (("keyframes", "AnimateDiffSparseControlNetPipeline"),
                            ("init_video", "AnimateDiffVideoToVideoPipeline"),
                            ("refine", "AnimateDiffVideoToVideoPipeline")):
        if getattr(spec, field) is not None:
            raise ConfigError(f"{field}: not supported with an SDXL base (diffusers' {pipeline} is SD1.5 only)",
                              where=label_, hint=f"remove `{field}:`, or use an SD1.5 base")


def family_warnings(spec: ClipSpec) -> list[str]:
    """Plan warnings for the SDXL family: an SDXL-Lightning UNet or LoRA run off the steps, scheduler or
    guidance it was distilled for."""
    out = []
    if base_family(spec.model) == SDXL:
        need = sdxl_memory(spec, "fp16")
        if need["decode"] > max(need["denoise"], 8.0):
            chunk = max(1, int(max(need["denoise"], 8.0) // decode_gib(spec, 1)))
            out.append(f"decoding {min(spec.decode_chunk, spec.frames)} frames at once at {spec.width}x{spec.height} "
                       f"needs about {need['decode']:.0f} GiB in the fp32 VAE: set decode_chunk: {chunk} (about "
                       f"{decode_gib(spec, chunk):.0f} GiB); on out-of-memory the renderer halves the chunk itself")
    steps = lightning_steps(spec)
    if steps is not None:
        if spec.steps != steps:
            out.append(f"the SDXL-Lightning checkpoint is distilled for {steps} steps but the clip uses {spec.steps}")
        if spec.scheduler != SDXL_SCHEDULER:
            out.append(f"SDXL-Lightning expects scheduler {SDXL_SCHEDULER} (Euler, trailing timesteps); got "
                       f"{spec.scheduler}")
        if spec.guidance > 1:
            out.append(f"guidance {spec.guidance:g} with SDXL-Lightning (0, no CFG, expected) gives burnt frames "
                       "and doubles the UNet work")
    return out


# ---------------------------------------------------------------- loading a full UNet checkpoint

def load_full_unet(unet, src: Source) -> None:
    """Load a full UNet state dict (SDXL-Lightning's `*_unet.safetensors`) into the pipeline's UNet, which has the
    base's config: every 2D layer must be in the file, and nothing else; the motion modules stay the adapter's."""
    from safetensors.torch import load_file

    path = src.local_file()
    if src.kind == "hub":
        from huggingface_hub import hf_hub_download

        if not src.weight_name:
            raise ModelError(f"unet {src.ref} needs the file to load", where="unet",
                             hint="give {source: REPO, weight_name: sdxl_lightning_4step_unet.safetensors}")
        path = Path(hf_hub_download(src.ref, src.weight_name, revision=src.revision))
    if path is None or path.suffix != ".safetensors":
        raise ModelError(f"unet {src.describe()} must be one .safetensors UNet file", where="unet")
    state = load_file(str(path))
    try:
        result = unet.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit the base's UNet
        line = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc).splitlines()[0])
        raise ModelError(f"unet {src.describe()} does not fit the base model's UNet ({line[:200]})", where="unet",
                         hint="use a UNet checkpoint made for this base model") from None
    missing = [k for k in result.missing_keys if ".motion_modules." not in k]
    if result.unexpected_keys or missing:
        what = (f"{len(result.unexpected_keys)} tensor(s) the base's UNet lacks (e.g. {result.unexpected_keys[0]})"
                if result.unexpected_keys else f"no {missing[0]} (and {len(missing) - 1} more)")
        raise ModelError(f"unet {src.describe()} does not fit the base model's UNet: {what}", where="unet",
                         hint="use a full UNet checkpoint made for this base model")


# ---------------------------------------------------------------- what SDXL costs (check's estimate)
# Parameter counts of the SDXL release: UNet 2.57 B, CLIP-L 0.12 B + OpenCLIP-bigG 0.69 B, VAE 0.08 B; the
# AnimateDiff SDXL beta motion modules ~0.24 B. In GiB at 2 or 4 bytes per parameter; the VAE decodes in fp32.
SDXL_WEIGHTS_GIB = {"fp16": 6.7, "fp32": 13.4}  # UNet + motion modules + both text encoders
SDXL_VAE_GIB = 0.32
# Denoising activations for 16 frames at 1024x1024 without CFG (CFG doubles the batch): an SD1.5 figure per
# latent pixel (1.6 GiB at 16x512^2) times 4 pixels; SDXL's first block has no attention, which offsets its width.
SDXL_ACTIVATION_GIB = 6.4
# fp32 VAE decoder working memory per decoded megapixel frame: measured on CPU (SDXL's VAE architecture, one
# 256x256 frame: 320 MiB above the loaded model, i.e. 5.0 GiB per megapixel; includes CPU convolution buffers).
SDXL_DECODE_GIB_PER_MPIX = 5.0
SDXL_COST = 2.5  # UNet FLOPs per latent pixel relative to SD1.5's


def sdxl_memory(spec: ClipSpec, precision: str) -> dict:
    """GiB an SDXL clip needs: weights (the VAE always fp32), denoising activations, one decode chunk."""
    scale = (spec.frames / 16) * (spec.width * spec.height) / (1024 * 1024)
    return {"weights": SDXL_WEIGHTS_GIB[precision] + SDXL_VAE_GIB,
            "denoise": SDXL_ACTIVATION_GIB * scale * (2 if spec.guidance > 1 else 1),
            "decode": decode_gib(spec, min(spec.decode_chunk, spec.frames))}


def decode_gib(spec: ClipSpec, chunk: int) -> float:
    return SDXL_DECODE_GIB_PER_MPIX * chunk * spec.width * spec.height / 2 ** 20


def sdxl_gib(spec: ClipSpec, precision: str) -> float:
    """An SDXL clip's peak: its weights plus the larger of denoising's activations and one decode chunk."""
    need = sdxl_memory(spec, precision)
    return round(need["weights"] + max(need["denoise"], need["decode"]), 1)


# ---------------------------------------------------------------- diffusers' gap: the added embedding
# UNetMotionModel.from_unet2d (diffusers 0.42) copies every 2D layer except `add_embedding`, SDXL's text/time
# embedding: AnimateDiffSDXLPipeline then runs it with fresh random weights (raised in diffusers PR #6721's review,
# left for later). The renderer puts the base's own weights back, read from its files.
ADDED_EMBEDDING_LDM = {"label_emb.0.0.": "linear_1.", "label_emb.0.2.": "linear_2."}


def _unet_files(src: Source) -> list[Path]:
    if src.kind == "file":
        return [Path(src.ref)]
    folder = Path(src.ref) / "unet" if src.kind == "folder" else None
    if src.kind == "hub":
        from .models import hub_snapshot

        snapshot = hub_snapshot(src)
        folder = snapshot / "unet" if snapshot is not None else None
    if folder is None:
        return []
    index = _json(folder / "diffusion_pytorch_model.safetensors.index.json")
    if index is not None:
        return sorted({folder / name for key, name in index.get("weight_map", {}).items()
                       if key.startswith("add_embedding.")})
    single = folder / "diffusion_pytorch_model.safetensors"
    return [single] if single.is_file() else []


def added_embedding_state(src: Source) -> dict:
    """The base's `add_embedding.*` tensors (diffusers names), read from its UNet file(s) or checkpoint."""
    from safetensors import safe_open

    out = {}
    for path in _unet_files(src):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                if src.kind != "file" and key.startswith("add_embedding."):
                    out[key.removeprefix("add_embedding.")] = fh.get_tensor(key)
                elif src.kind == "file" and key.startswith("model.diffusion_model.label_emb."):
                    rest = key.removeprefix("model.diffusion_model.")
                    for old, new in ADDED_EMBEDDING_LDM.items():
                        if rest.startswith(old):
                            out[new + rest.removeprefix(old)] = fh.get_tensor(key)
    return out


def restore_added_embedding(unet, src: Source) -> None:
    """Give an SDXL motion UNet its base's added text/time embedding (see above); a base whose files hold none
    (a UNet without `text_time`) is left alone."""
    embedding = getattr(unet, "add_embedding", None)
    if embedding is None:
        return
    state = added_embedding_state(src)
    if not state:
        raise ModelError(f"cannot find the added text/time embedding (add_embedding) in {src.describe()}",
                         where="model", hint="give the SDXL base as a diffusers folder or hub id")
    embedding.load_state_dict({k: v.to(next(embedding.parameters()).dtype) for k, v in state.items()})
