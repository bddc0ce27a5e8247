"""Which parts fit a base model, read from configs and headers before anything loads: a motion adapter or
ControlNet fits by the shape of the base UNet (as diffusers decides), LoRAs and UNets by family, and what the
SDXL pipeline cannot do. One line each, naming the field."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from animate.errors import ConfigError, ModelError
from animate.models.family import (FIX, SD15, SDXL, SDXL_SCHEDULER, adapter_blocks, base_family, decode_gib,
                                   known_family, label, lightning_steps, motion_max_frames, own_config, read_config,
                                   sdxl_memory, tensor_names, unet_file_family)

if TYPE_CHECKING:
    from animate.models.sources import Source
    from animate.spec import ClipSpec


# (block_out_channels, layers_per_block) of the UNet diffusers builds for a family's single checkpoint.
STANDARD_UNET = {SD15: ((320, 640, 1280, 1280), 2), SDXL: ((320, 640, 1280), 2)}


def adapter_layers(src: Source) -> int | None:
    """Motion layers per block of a motion adapter (its config, else its tensor names)."""
    config = own_config(src)
    if config is not None and config.get("motion_layers_per_block") is not None:
        layers = config["motion_layers_per_block"]
        return int(layers if isinstance(layers, int) else max(layers))
    keys = tensor_names(src)
    found = {int(m.group(1)) for k in keys or [] for m in [re.match(r"down_blocks\.\d+\.motion_modules\.(\d+)\.", k)]
             if m}
    return max(found) + 1 if found else None


def unet_shape(base: Source, family: str) -> tuple[tuple[int, ...], int]:
    """The base UNet's (block_out_channels, layers_per_block): its config, else the family's standard UNet (what
    diffusers builds for a single checkpoint without a config)."""
    config = read_config(base, "unet/config.json")
    if config and config.get("block_out_channels"):
        return tuple(config["block_out_channels"]), int(config.get("layers_per_block", 2))
    return STANDARD_UNET[family]


def motion_misfit(adapter: Source, base: Source, family: str) -> str | None:
    """Why a motion adapter cannot be built into the base's UNet, or None. diffusers' UNetMotionModel.from_unet2d
    needs the same number of blocks and layers per block, and the motion modules' channels must match the UNet's
    blocks: that, not the family, decides whether they fit."""
    channels, layers = unet_shape(base, family)
    config = own_config(adapter)
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
    config = own_config(controlnet)
    if not config or not config.get("block_out_channels"):
        return None
    channels, _ = unet_shape(base, family)
    own = tuple(config["block_out_channels"])
    if own != channels:
        return (f"{controlnet.describe()} does not fit model {base.describe()}: it is built for a UNet with {len(own)} "
                f"blocks of {list(own)} channels, but the model ({label(family)}) has {len(channels)} blocks of "
                f"{list(channels)} channels")
    return None


def check_family(spec: ClipSpec, label_: str, added: list[tuple[str, Source]] = ()) -> None:
    """Motion adapter, the ControlNet-shaped models the clip's conditioning adds (`added`: (field, source)) and
    `unet:` against the base, and what the SDXL pipeline cannot do; one line each (LoRAs are checked with the LoRA
    slot checks, which read their headers)."""
    family = base_family(spec.model)
    if family is None:
        return
    where = f"{label_}: "
    misfit = motion_misfit(spec.motion_adapter, spec.model, family)
    if misfit:
        raise ModelError(misfit, where=f"{where}motion_adapter",
                         hint=f"use a motion adapter made for this base (for an {label(family)} base e.g. "
                              f"{FIX[family]['motion_adapter']}), or the base it was made for")
    for field_name, src in added:
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
    for i, adapter in enumerate(spec.adapters):  # LoRAs whose header could not be read (not cached)
        known = known_family(adapter.source)
        if known is not None and known != family:
            raise ModelError(f"{adapter.source.describe()} is an {label(known)} LoRA and cannot be applied to an "
                             f"{label(family)} model", where=f"{where}adapters[{i}] ({adapter.name})",
                             hint=f"use an {label(family)} LoRA (e.g. {FIX[family]['lora']}), or an {label(known)} "
                                  "base model")
    if family == SDXL:
        check_sdxl_features(spec, label_)


def check_sdxl_features(spec: ClipSpec, label_: str) -> None:
    """AnimateDiffSDXLPipeline has no FreeNoise (so no prompt travel, no context windows) and no ControlNet."""
    why = "diffusers' AnimateDiffSDXLPipeline has no FreeNoise"
    for field in ("prompt", "negative"):
        if isinstance(getattr(spec, field), dict):
            raise ConfigError(f"{field}: prompt travel (keyframes) is not supported with an SDXL base ({why})",
                              where=label_, hint=f"give `{field}` as one text, or use an SD1.5 base")
    length = spec.context.length
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
