"""Write a diffusers Stable Diffusion (1.x-shaped) base model as ONE original-format checkpoint.

Users often give a base model as a single LDM / A1111 / CivitAI style `.safetensors` file, which
`AnimateDiffPipeline.from_single_file(path, motion_adapter=..., config=<diffusers folder>)` loads. To test that
path offline the tiny kit's `base/` folder has to exist in that format too; `write_single_file` produces it.

The key layout is the inverse of diffusers' single-file converters (`diffusers.loaders.single_file_utils`):

* UNet  `model.diffusion_model.*`            ← `convert_ldm_unet_checkpoint`
* VAE   `first_stage_model.*`                ← `convert_ldm_vae_checkpoint` (mid-block attention as 1x1 convs)
* CLIP  `cond_stage_model.transformer.text_model.*` ← `convert_ldm_clip_checkpoint`

and, as its own file, a ControlNet in lllyasviel's ControlNet layout (`control_v11p_sd15_openpose.pth` and the
like; `write_controlnet_single_file`):

* ControlNet `control_model.*`              ← `convert_controlnet_checkpoint`

What `from_single_file` needs for these tiny shapes: only `config=` pointing at the local diffusers folder
(the kit's `base/`). With `config=` given, diffusers never calls `infer_diffusers_model_type` (which reads a few
key names/shapes and would otherwise pick a hub repo: SD1.5 for this file, since it has neither the SD2 1024-wide
cross-attention nor SDXL's extra embedders); every component's config (layer counts, channels, CLIP sizes) is read
from `config/<component>/config.json`, and the tokenizer and scheduler are loaded from that folder as they are.
With `HF_HUB_OFFLINE=1` nothing touches the network. No other arguments are needed; without `config=` the
loader would try to fetch the stable-diffusion-v1-5 configs from the hub and the tiny weights would not fit them.

Two details the loader dictates:
* The UNet converter reads `layers_per_block` from the config as ONE int (it computes `layers_per_block + 1`), so
  a UNet with different layer counts per block cannot round-trip through it; we refuse such configs.
* transformers >= 5.6 saves `CLIPTextModel` without the `text_model.` prefix; the original layout (and the
  loader's `is_clip_model` probe, `cond_stage_model.transformer.text_model.embeddings.position_embedding.weight`)
  has it, and the loader strips it again when the model class has no `text_model` wrapper.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
CONTROLNET_PREFIX = "control_model."  # diffusers' LDM_CONTROLNET_KEY

# cldm's `input_hint_block` is one fixed Sequential: conv_in, SiLU, then (conv, SiLU) per block, and the zero conv
# last, at index 14 for the real 6-block hint encoder. diffusers reads the last conv from index 14 whatever the
# number of blocks (`controlnet_cond_embedding.conv_out` ← `input_hint_block.14`), so it always goes there.
_HINT_OUT = 14

# Top-level UNet layers with fixed names (the inverse of DIFFUSERS_TO_LDM_MAPPING["unet"]); the class/addition
# embeddings both live at `label_emb` in LDM (a model has at most one of them).
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding": "label_emb",  # nn.Embedding class labels (num_class_embeds), e.g. the x4 upscaler
}

# LDM's ResBlock packs its layers in Sequentials: in_layers = [norm, SiLU, conv], emb_layers = [SiLU, linear],
# out_layers = [norm, SiLU, dropout, conv]; hence the indices. The loader maps them back the same way.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

_VAE_FIXED = {
    "conv_in": "conv_in",
    "conv_out": "conv_out",
    "conv_norm_out": "norm_out",
}

# The VAE mid-block attention: diffusers' Attention (linear q/k/v/out, `group_norm`) vs LDM's AttnBlock
# (1x1 Conv2d q/k/v/proj_out, `norm`).
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _layers_per_block(config: dict) -> int:
    value = config["layers_per_block"]
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            # convert_ldm_unet_checkpoint computes `config["layers_per_block"] + 1`: only uniform counts load.
            raise ValueError(f"layers_per_block {list(value)} differs per block; diffusers' single-file loader "
                             "needs one count for every block")
        value = value[0]
    return int(value)


def _split(key: str) -> tuple[str, str]:
    """'a.b.c.weight' → ('a.b.c', 'weight')."""
    module, _, param = key.rpartition(".")
    return module, param


def _rename(rest: str, table: dict[str, str]) -> str:
    """Rename the leading sub-module of `rest` ('conv1.weight' → 'in_layers.2.weight') by `table`."""
    for old, new in table.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def convert_unet(state: dict, config: dict) -> dict:
    """Diffusers UNet2DConditionModel keys → LDM `openaimodel.UNetModel` keys (without the `model.diffusion_model.`
    prefix).

    LDM numbers its down path as one flat list, `input_blocks`: 0 is conv_in, then for every down block
    `layers_per_block` entries (each [ResBlock, SpatialTransformer?]) and, except after the last block, one
    downsampler entry `[Downsample(op)]`. So block b, layer j sits at 1 + b*(lpb+1) + j and its downsampler
    at (b+1)*(lpb+1). The up path, `output_blocks`, has lpb+1 entries per block ([ResBlock, SpatialTransformer?,
    Upsample?]); the upsampler sits in the block's last entry, after the attention when there is one.
    Transformer internals (proj_in, transformer_blocks.N.attn1.to_q, ...) are named the same in both.
    """
    lpb = _layers_per_block(config)
    # Which up blocks have attentions decides whether their upsampler is sub-module 1 or 2 of the entry.
    up_has_attention = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out = {}
    for key, value in state.items():
        new = None
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            index = 1 + b * (lpb + 1) + j
            new = (f"input_blocks.{index}.0.{_rename(rest, _UNET_RESNET)}" if kind == "resnets"
                   else f"input_blocks.{index}.1.{rest}")
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{(int(m.group(1)) + 1) * (lpb + 1)}.0.op.{m.group(2)}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            # middle_block = [ResBlock, SpatialTransformer, ResBlock]: resnet k is entry 2k (0, 2).
            new = f"middle_block.{2 * int(m.group(1))}.{_rename(m.group(2), _UNET_RESNET)}"
        elif m := re.match(r"mid_block\.attentions\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            b, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            index = b * (lpb + 1) + j
            new = (f"output_blocks.{index}.0.{_rename(rest, _UNET_RESNET)}" if kind == "resnets"
                   else f"output_blocks.{index}.1.{rest}")
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m.group(1))
            slot = 2 if b in up_has_attention else 1
            new = f"output_blocks.{b * (lpb + 1) + lpb}.{slot}.conv.{m.group(2)}"
        else:
            module, param = _split(key)
            if module in _UNET_FIXED:
                new = f"{_UNET_FIXED[module]}.{param}"
        if new is None:
            # Refuse rather than drop: a missing tensor would load as garbage (or stay on the meta device).
            raise ValueError(f"no LDM name for UNet key {key!r}")
        out[new] = value
    return out


def convert_vae(state: dict, config: dict) -> dict:
    """Diffusers AutoencoderKL keys → LDM `AutoencoderKL` keys (without the `first_stage_model.` prefix).

    LDM's decoder numbers its `up` blocks from the lowest resolution's opposite end: diffusers' up_blocks[i] is
    LDM's up[n-1-i] (the loader reverses it back using len(up_block_types)). Mid resnets are `block_1`/`block_2`,
    the shortcut conv is `nin_shortcut`, and the mid attention is an AttnBlock of 1x1 convs.
    """
    n_up = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        new = None
        if m := re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            part, way, i, j, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5)
            i = n_up - 1 - i if way == "up" else i
            new = f"{part}.{way}.{i}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"encoder.down.{m.group(1)}.downsample.conv.{m.group(2)}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            new = f"decoder.up.{n_up - 1 - int(m.group(1))}.upsample.conv.{m.group(2)}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            new = f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{rest}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            rest = _rename(m.group(2), _VAE_ATTENTION)
            new = f"{m.group(1)}.mid.attn_1.{rest}"
            if rest.startswith(("q.", "k.", "v.", "proj_out.")) and rest.endswith(".weight") and value.ndim == 2:
                # LDM's AttnBlock uses Conv2d(c, c, 1): store [out, in, 1, 1] as real checkpoints do. The loader
                # (update_vae_attentions_ldm_to_diffusers / conv_attn_to_linear) slices [:, :, 0, 0] back.
                value = value.reshape(*value.shape, 1, 1)
        elif m := re.match(r"(encoder|decoder)\.(\w+)\.(weight|bias)$", key):
            if m.group(2) in _VAE_FIXED:
                new = f"{m.group(1)}.{_VAE_FIXED[m.group(2)]}.{m.group(3)}"
        elif re.match(r"(post_)?quant_conv\.(weight|bias)$", key):
            new = key
        if new is None:
            raise ValueError(f"no LDM name for VAE key {key!r}")
        out[new] = value
    return out


def convert_text_encoder(state: dict) -> dict:
    """CLIPTextModel keys → the `transformer.text_model.*` layout of LDM's FrozenCLIPEmbedder (without the
    `cond_stage_model.` prefix). Newer transformers save without `text_model.`; originals always have it."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue  # a recomputed buffer; current CLIPTextModel does not take it back
        out["transformer." + (key if key.startswith("text_model.") else "text_model." + key)] = value
    return out


def convert_controlnet(state: dict, config: dict) -> dict:
    """Diffusers ControlNetModel keys → cldm `ControlNet` keys (without the `control_model.` prefix).

    The ControlNet is the UNet's down path and middle block (same LDM names, so `convert_unet` maps them:
    `time_embed`, `input_blocks`, `middle_block`, `label_emb`), plus three ControlNet-only parts:

    * `controlnet_cond_embedding` → `input_hint_block`: conv_in at 0, blocks[i] at 2*(i+1) (the SiLUs sit at the
      odd indices), conv_out at 14 (see `_HINT_OUT`);
    * `controlnet_down_blocks.i` → `zero_convs.i.0` (one 1x1 zero conv per `input_blocks` entry);
    * `controlnet_mid_block` → `middle_block_out.0`.
    """
    own = {k: v for k, v in state.items() if k.startswith("controlnet_")}
    out = convert_unet({k: v for k, v in state.items() if k not in own}, config)
    for key, value in own.items():
        new = None
        module, param = _split(key)
        if module == "controlnet_cond_embedding.conv_in":
            new = f"input_hint_block.0.{param}"
        elif module == "controlnet_cond_embedding.conv_out":
            new = f"input_hint_block.{_HINT_OUT}.{param}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
            index = 2 * (int(m.group(1)) + 1)
            if index >= _HINT_OUT:
                raise ValueError(f"{key!r}: the hint encoder has more convs than cldm's input_hint_block holds "
                                 f"(diffusers reads its last conv from index {_HINT_OUT})")
            new = f"input_hint_block.{index}.{param}"
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
            new = f"zero_convs.{m.group(1)}.0.{param}"
        elif module == "controlnet_mid_block":
            new = f"middle_block_out.0.{param}"
        if new is None:
            raise ValueError(f"no cldm name for ControlNet key {key!r}")
        out[new] = value
    if len(out) != len(state):
        raise ValueError(f"key collision converting the ControlNet ({len(state)} tensors in, {len(out)} out)")
    return out


def to_original_checkpoint(unet_state: dict, vae_state: dict, text_encoder_state: dict,
                           unet_config: dict, vae_config: dict) -> dict:
    """Diffusers state dicts (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) → one original LDM checkpoint
    dict (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`).

    Tensors are made contiguous (safetensors refuses views); values are otherwise unchanged except the VAE
    mid-attention weights, which become 1x1 conv kernels as in real checkpoints.
    """
    out = {}
    for prefix, part in ((UNET_PREFIX, convert_unet(unet_state, unet_config)),
                         (VAE_PREFIX, convert_vae(vae_state, vae_config)),
                         ("cond_stage_model.", convert_text_encoder(text_encoder_state))):
        for key, value in part.items():
            out[prefix + key] = value.contiguous()
    n_in = len(unet_state) + len(vae_state) + sum(not k.endswith("position_ids") for k in text_encoder_state)
    if len(out) != n_in:  # two diffusers keys landed on one LDM name: the mapping would lose weights
        raise ValueError(f"key collision converting to LDM layout ({n_in} tensors in, {len(out)} out)")
    return out


def _load_component(folder: Path) -> tuple[dict, dict]:
    """(state dict, config) of one component folder, read straight from its safetensors file(s)."""
    from safetensors.torch import load_file  # torch stack: kept out of light commands

    files = sorted(folder.glob("*.safetensors"))
    files = [f for f in files if ".fp16." not in f.name] or files  # prefer full-precision variants
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    state = {}
    for file in files:  # sharded saves split one state dict over several files
        state.update(load_file(str(file)))
    return state, json.loads((folder / "config.json").read_text())


def write_single_file(base_folder: str | os.PathLike, dest_file: str | os.PathLike) -> Path:
    """Convert a diffusers Stable Diffusion folder (unet/, vae/, text_encoder/) into one original-format
    `.safetensors` checkpoint at `dest_file`. The tokenizer and scheduler are not stored: load the file with
    `from_single_file(dest_file, config=base_folder)`, which takes them from the folder."""
    base = Path(base_folder)
    unet_state, unet_config = _load_component(base / "unet")
    vae_state, vae_config = _load_component(base / "vae")
    text_state, _ = _load_component(base / "text_encoder")
    return _save(to_original_checkpoint(unet_state, vae_state, text_state, unet_config, vae_config), dest_file)


def write_controlnet_single_file(folder: str | os.PathLike, dest_file: str | os.PathLike) -> Path:
    """Convert a diffusers ControlNetModel folder into one `control_model.*` `.safetensors` file at `dest_file`,
    the layout of lllyasviel's ControlNet releases. Load it with
    `ControlNetModel.from_single_file(dest_file, config=folder)`: the file holds no config, and without `config=`
    diffusers takes the SD1.5 canny ControlNet's config from the hub."""
    state, config = _load_component(Path(folder))
    checkpoint = {CONTROLNET_PREFIX + k: v.contiguous() for k, v in convert_controlnet(state, config).items()}
    return _save(checkpoint, dest_file)


def _save(checkpoint: dict, dest_file: str | os.PathLike) -> Path:
    from safetensors.torch import save_file  # torch stack: kept out of light commands

    dest = Path(dest_file)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    save_file(checkpoint, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, dest)  # no half-written checkpoint under the real name
    return dest
