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
import re
from pathlib import Path
from typing import TYPE_CHECKING

from animate.models.weights import read_safetensors_keys
from animate.models.configs import read_config

if TYPE_CHECKING:
    from animate.models.sources import Source
    from animate.spec import ClipSpec

SD15, SDXL = "sd15", "sdxl"
LABELS = {SD15: "SD1.5", SDXL: "SDXL"}
NATIVE_SIZE = {SD15: 512, SDXL: 1024}
SDXL_BLOCKS = 3  # down blocks of an SDXL-shaped UNet (SDXL, SSD-1B); SD1.5 has four
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

def own_config(src: Source) -> dict | None:
    """An adapter's or ControlNet's own config.json, or None (a bare weights file without `config:` has none)."""
    return None if src.kind == "file" and not src.config else read_config(src, "config.json")


def tensor_names(src: Source) -> list[str] | None:
    local = src.local_file()
    if local is None or local.suffix != ".safetensors" or not local.is_file():
        return None

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
    index = read_config(src, "model_index.json")
    if index is not None and ("text_encoder_2" in index or "XL" in str(index.get("_class_name", ""))):
        return SDXL
    unet = read_config(src, "unet/config.json")
    if unet is not None:
        return family_of_unet_config(unet)
    if index is not None:
        return SD15
    keys = tensor_names(src) if src.kind == "file" else None
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
    unet, vae = read_config(src, "unet/config.json"), read_config(src, "vae/config.json")
    if unet and unet.get("sample_size") and vae and vae.get("block_out_channels"):
        size = unet["sample_size"]
        size = size[0] if isinstance(size, (list, tuple)) else size
        return int(size) * 2 ** (len(vae["block_out_channels"]) - 1)
    return NATIVE_SIZE.get(family) if family else None


@functools.lru_cache(maxsize=256)
def adapter_blocks(src: Source) -> int | None:
    """How many UNet blocks a motion adapter is built for (its config, else its tensor names)."""
    config = own_config(src)
    if config is not None and config.get("block_out_channels"):
        return len(config["block_out_channels"])
    keys = tensor_names(src)
    if keys is None:
        return None
    blocks = {int(m.group(1)) for k in keys for m in [re.match(r"down_blocks\.(\d+)\.motion_modules\.", k)] if m}
    return max(blocks) + 1 if blocks else None


def adapter_family(src: Source) -> str | None:
    """A label for messages only: fit is decided by shape (motion_misfit)."""
    blocks = adapter_blocks(src)
    if blocks is None:
        return known_family(src)
    return SDXL if blocks == SDXL_BLOCKS else SD15


def unet_file_family(src: Source) -> str | None:
    """A full UNet state dict's family (SDXL's carries the added text/time embedding)."""
    keys = tensor_names(src)
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
    names += [a.source.weight_name or Path(a.source.ref).name for a in spec.adapters if a.weight != 0]
    for name in names:
        m = LIGHTNING_STEPS.search(name.lower())
        if m:
            return int(m.group(1))
    return None


# ---------------------------------------------------------------- pipelines

def pipeline_class(family: str):
    """The diffusers text-to-video pipeline of a family."""
    if family == SDXL:
        from diffusers import AnimateDiffSDXLPipeline  # torch stack: kept out of light commands

        return AnimateDiffSDXLPipeline
    from diffusers import AnimateDiffPipeline  # torch stack: kept out of light commands

    return AnimateDiffPipeline


def has_free_noise(pipe) -> bool:
    """FreeNoise (context windows, prompt travel) is a mixin of the SD1.5 pipelines only."""
    return hasattr(pipe, "enable_free_noise")


# ---------------------------------------------------------------- checks before anything loads


# ---------------------------------------------------------------- loading a full UNet checkpoint


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


DEFAULT_MAX_FRAMES = 32  # motion_max_seq_length of the SD1.5 AnimateDiff adapters


def motion_max_frames(src) -> int:
    """The adapter's positional-encoding length, from its config where one is readable (else SD1.5's)."""
    config = read_config(src, "config.json") or {}
    try:
        return int(config.get("motion_max_seq_length", DEFAULT_MAX_FRAMES))
    except (TypeError, ValueError):  # a config with a strange value: the SD1.5 length
        return DEFAULT_MAX_FRAMES
