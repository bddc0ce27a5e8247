"""The tiny offline model kit: random-weight models with the real SD1.5/AnimateDiff shapes and files.

Tests, the demo command and benchmarks load these through exactly the code paths real weights use
(`from_pretrained` on folders, `from_single_file` on the base, motion module and ControlNet files,
`load_lora_weights` on `.safetensors`).
Building is deterministic: every tensor comes from a fixed seed, so two builds are identical.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from animate.util.atomic import atomic_dir, atomic_file, file_lock
from animate.models.tiny_parts import SEED, save_lora, seeded, make_tokenizer
from animate.util.cache import cache_root
from animate.errors import ConfigError
from animate.models.tiny_ldm import write_controlnet_single_file, write_single_file
from animate.models.tiny_xl import ensure_xl
import re

KIT_VERSION = 5

# Names a script may use for the kit's parts (see models.KNOWN_MODELS).
PARTS = {
    "base": "base",  # SD1.5-shaped diffusers folder
    "base_file": "base.safetensors",  # the same weights as one original-format checkpoint
    "motion": "motion-adapter",  # MotionAdapter folder
    "motion_file": "motion-module.safetensors",  # same weights, original AnimateDiff single-file format
    "lightning": "lightning-2step.safetensors",  # same layout as AnimateDiff-Lightning: bare diffusers state dict
    "lcm": "lcm-lora/pytorch_lora_weights.safetensors",  # spatial LoRA, LCM-LoRA shaped
    "zoom": "motion-lora-zoom-in/diffusion_pytorch_model.safetensors",
    "pan": "motion-lora-pan-left/diffusion_pytorch_model.safetensors",
    "openpose": "controlnet-openpose",
    "openpose_file": "controlnet-openpose.safetensors",  # same weights, lllyasviel's `control_model.*` layout
    "sparsectrl": "sparsectrl-rgb",  # SparseControlNetModel folder shaped like guoyww/animatediff-sparsectrl-rgb
    "sparsectrl_file": "sparsectrl-rgb.safetensors",  # the same weights in the original SparseCtrl key layout
}


def kit_dir() -> Path:
    return cache_root() / f"tiny-v{KIT_VERSION}"


def ensure_kit(out: str | os.PathLike | None = None) -> Path:
    """Return the kit folder, building it on first use (atomically, so a crash leaves nothing half-built)."""
    dest = Path(out) if out else kit_dir()
    if (dest / "kit.json").exists():
        write_sparsectrl(dest)  # kits built before SparseCtrl gain it in place
        return dest
    with file_lock(dest.with_name(f".{dest.name}.lock")):  # two first runs at once build it once
        if not (dest / "kit.json").exists():
            with atomic_dir(dest) as tmp:
                build_kit(tmp)
    return dest


def _base_components():
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel  # torch stack: kept out of light commands
    from transformers import CLIPTextConfig, CLIPTextModel  # torch stack: kept out of light commands

    tokenizer, vocab_size = make_tokenizer()
    seeded(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 8), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, norm_num_groups=2,
    )
    seeded(1)
    # Four VAE blocks downsample 8x, as every SD model's VAE does: a latent frame is 1/12 of its pixels'
    # bytes (a 2x VAE would make it 4/3 of them, and memory tests would measure latents, not frames).
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, norm_num_groups=2, sample_size=64,
    )
    seeded(2)
    text_config = CLIPTextConfig(
        hidden_size=8, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=vocab_size, max_position_embeddings=77, projection_dim=8,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(text_config)
    # The SD1.5 scheduler config, so schedulers built "from the base config" behave as with real weights.
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1,
    )
    return unet, vae, text_encoder, tokenizer, scheduler


def _motion_adapter():
    from diffusers import MotionAdapter  # torch stack: kept out of light commands

    seeded(3)
    return MotionAdapter(
        block_out_channels=(8, 8), motion_layers_per_block=2, motion_norm_num_groups=2,
        motion_num_attention_heads=4, motion_max_seq_length=32, use_motion_mid_block=True,
    )


def to_original_motion_keys(state: dict, max_seq_length: int) -> dict:
    """Diffusers MotionAdapter keys → original AnimateDiff keys (the inverse of diffusers' converter),
    adding the sinusoidal `pos_encoder.pe` buffers the original files carry."""

    import torch  # torch stack: kept out of light commands

    out = {}
    dims = {}
    for key, value in state.items():
        if ".pos_embed." in key:  # original files carry pos_encoder.pe instead (added below)
            continue
        new = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", key)
        new = (new.replace(".attn1", ".attention_blocks.0").replace(".attn2", ".attention_blocks.1")
               .replace(".norm1", ".norms.0").replace(".norm2", ".norms.1").replace(".norm3", ".ff_norm"))
        out[new] = value.contiguous()
        m = re.match(r"(.*\.attention_blocks\.\d)\.to_q\.weight$", new)
        if m:
            dims[m.group(1)] = value.shape[1]
    for prefix, dim in dims.items():
        position = torch.arange(max_seq_length).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-torch.log(torch.tensor(10000.0)) / dim))
        pe = torch.zeros(1, max_seq_length, dim)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        out[f"{prefix}.pos_encoder.pe"] = pe
    return out


def _controlnet(unet):
    from diffusers import ControlNetModel  # torch stack: kept out of light commands

    import torch  # torch stack: kept out of light commands

    seeded(7)
    net = ControlNetModel(
        block_out_channels=(8, 8), layers_per_block=2, in_channels=4, cross_attention_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), conditioning_embedding_out_channels=(8, 8, 8, 8),
        norm_num_groups=1, conditioning_channels=3,
    )
    # ControlNets start with zero convolutions (no effect until trained); give them weights so the
    # pose visibly steers the tiny model, as a trained one would.
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                                "controlnet_cond_embedding.conv_out")):
                param.normal_(0.0, 0.3)
            elif name.startswith("controlnet_cond_embedding.") and name.endswith("weight"):
                # He init keeps the pose's signal through the hint encoder's seven convs (SiLU between);
                # the default init shrinks it about 2x per conv.
                param.normal_(0.0, (2.0 / param[0].numel()) ** 0.5)
    return net


def build_kit(dest: Path) -> Path:
    """Write every part of the kit into `dest` (an empty folder)."""
    import torch  # torch stack: kept out of light commands
    from diffusers import StableDiffusionPipeline, UNetMotionModel  # torch stack: kept out of light commands
    from safetensors.torch import save_file  # torch stack: kept out of light commands

    dest = Path(dest)
    unet, vae, text_encoder, tokenizer, scheduler = _base_components()
    base = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    base.save_pretrained(dest / PARTS["base"], safe_serialization=True)

    write_single_file(dest / PARTS["base"], dest / PARTS["base_file"])  # the same model, A1111/CivitAI layout

    adapter = _motion_adapter()
    adapter.save_pretrained(dest / PARTS["motion"], safe_serialization=True)
    state = {k: v for k, v in adapter.state_dict().items()}
    save_file(to_original_motion_keys(state, adapter.config.motion_max_seq_length), str(dest / PARTS["motion_file"]))
    # Lightning checkpoints are bare diffusers-keyed motion state dicts; perturb so it differs from the adapter.
    seeded(4)
    lightning = {k: (v + 0.01 * torch.randn_like(v)).contiguous() for k, v in state.items()}
    save_file(lightning, str(dest / PARTS["lightning"]))

    save_lora(unet, r"^(?!.*motion_modules).*(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$", "lcm",
               dest / "lcm-lora", "pytorch_lora_weights.safetensors", offset=5)
    motion_unet = UNetMotionModel.from_unet2d(unet, adapter)
    pattern = r".*motion_modules.*(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$"
    save_lora(motion_unet, pattern, "zoom", dest / "motion-lora-zoom-in", "diffusion_pytorch_model.safetensors", 6)
    save_lora(motion_unet, pattern, "pan", dest / "motion-lora-pan-left", "diffusion_pytorch_model.safetensors", 8)

    _controlnet(unet).save_pretrained(dest / PARTS["openpose"], safe_serialization=True)

    write_controlnet_single_file(dest / PARTS["openpose"], dest / PARTS["openpose_file"])
    write_sparsectrl(dest)
    (dest / "kit.json").write_text(json.dumps({"kit_version": KIT_VERSION, "seed": SEED, "parts": PARTS}, indent=2))
    return dest


def export_kit(out: str | os.PathLike) -> Path:
    """Copy (building if needed) the kit into `out`."""
    src = ensure_kit()

    ensure_xl(src)  # the SDXL-shaped parts are built on first use; an export carries them too
    out = Path(out)
    if out.resolve() == src.resolve():
        return out
    if out.exists() and any(out.iterdir()) and not (out / "kit.json").exists():
        raise ConfigError(f"{out} exists and is not an animate model kit; refusing to replace it", where="--out",
                          hint="give a new or empty folder")
    with atomic_dir(out) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
    return out


# ---------------------------------------------------------------- SparseCtrl (image keyframes)

def _sparsectrl():
    """A SparseControlNetModel shaped like guoyww/animatediff-sparsectrl-rgb: the keyframes enter as 4-channel
    VAE latents plus the keyframe mask (conditioning_channels=4, concat_conditioning_mask) through the one-conv
    "simplified" embedding, which is what makes diffusers' pipeline VAE-encode the images."""
    import torch  # torch stack: kept out of light commands
    from diffusers import SparseControlNetModel  # torch stack: kept out of light commands

    seeded(9)
    net = SparseControlNetModel(
        block_out_channels=(8, 8), layers_per_block=2, in_channels=4, conditioning_channels=4,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"), cross_attention_dim=8,
        norm_num_groups=2, motion_num_attention_heads=4, motion_max_seq_length=32,
        concat_conditioning_mask=True, use_simplified_condition_embedding=True,
    )
    # Its zero convolutions would make it do nothing, as an untrained ControlNet does: give them weights so
    # keyframes visibly steer the tiny model.
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                param.normal_(0.0, 0.3)
    return net


def write_sparsectrl(kit: Path) -> Path:
    """The kit's SparseCtrl folder and single file, written (atomically) when a kit built before them lacks
    them. The single file has the original checkpoint's motion-module names (`temporal_transformer`,
    `attention_blocks`, `pos_encoder.pe`), which diffusers' from_single_file converts back."""
    from safetensors.torch import save_file  # torch stack: kept out of light commands

    dest = Path(kit) / PARTS["sparsectrl"]
    single = Path(kit) / PARTS["sparsectrl_file"]
    if (dest / "config.json").exists() and single.exists():
        return dest
    net = _sparsectrl()
    if not (dest / "config.json").exists():
        with atomic_dir(dest) as tmp:
            net.save_pretrained(tmp, safe_serialization=True)
    if not single.exists():
        state = to_original_motion_keys(net.state_dict(), net.config.motion_max_seq_length)
        with atomic_file(single) as tmp:
            save_file(state, str(tmp))
    return dest
