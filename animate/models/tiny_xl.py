"""The tiny kit's SDXL-shaped parts: a base with two CLIP text encoders (the second with a projection, whose
pooled output and the size/crop time ids feed the UNet's added `text_time` embedding), a small UNet in SDXL's
block layout, its motion adapter (no mid block, as guoyww's SDXL beta), an SDXL LoRA and a Lightning-style
full-UNet state dict file.

They live in `<kit>/xl/` and are built on first use of a `tiny-xl*` name (`ensure_xl`), so the SD1.5 kit and
its version stay as they are. Deterministic like the rest of the kit.
"""
from __future__ import annotations

import json
from pathlib import Path

from animate.util.atomic import atomic_dir
from animate.models.tiny_parts import make_tokenizer, save_lora, seeded

XL_VERSION = 1
XL_DIR = "xl"
XL_PARTS = {
    "base": "base",  # StableDiffusionXLPipeline folder
    "motion": "motion-adapter",  # SDXL-shaped MotionAdapter folder
    "lcm": "lcm-lora/pytorch_lora_weights.safetensors",  # spatial SDXL LoRA, LCM-LoRA-SDXL shaped
    "lightning_unet": "sdxl_lightning_2step_unet.safetensors",  # full UNet state dict, SDXL-Lightning's naming
}
# The SDXL layout: three down blocks, the first without attention, a deeper transformer stack in the last.
UNET_CHANNELS = (8, 16, 16)
TEXT_HIDDEN = (8, 8)  # the two encoders' widths; cross-attention sees both, concatenated
PROJECTION_DIM = 8
TIME_EMBED_DIM = 4  # addition_time_embed_dim: six size/crop ids each embedded this wide


def ensure_xl(kit: Path) -> Path:
    """`<kit>/xl`, built on first use (atomically)."""
    dest = Path(kit) / XL_DIR
    marker = dest / "xl.json"
    if marker.exists() and json.loads(marker.read_text()).get("xl_version") == XL_VERSION:
        return dest
    with atomic_dir(dest) as tmp:
        build_xl(Path(tmp))
    return dest


def _text_encoders():
    # torch stack: kept out of light commands
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, vocab_size = make_tokenizer()
    tokenizer_2, _ = make_tokenizer()

    def config(hidden: int, layers: int) -> CLIPTextConfig:
        return CLIPTextConfig(hidden_size=hidden, intermediate_size=37, num_attention_heads=4, num_hidden_layers=layers,
                              vocab_size=vocab_size, max_position_embeddings=77, projection_dim=PROJECTION_DIM,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id, hidden_act="gelu")

    seeded(20)
    text_encoder = CLIPTextModel(config(TEXT_HIDDEN[0], 3))
    seeded(21)
    text_encoder_2 = CLIPTextModelWithProjection(config(TEXT_HIDDEN[1], 3))
    return text_encoder, text_encoder_2, tokenizer, tokenizer_2


def _unet():
    from diffusers import UNet2DConditionModel  # torch stack: kept out of light commands

    seeded(22)
    return UNet2DConditionModel(
        block_out_channels=UNET_CHANNELS, layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 4), use_linear_projection=True,
        cross_attention_dim=sum(TEXT_HIDDEN), norm_num_groups=2, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM, projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM
        + PROJECTION_DIM,
    )


def _vae():
    from diffusers import AutoencoderKL  # torch stack: kept out of light commands

    seeded(23)
    # SDXL's VAE config: its own scaling factor, and force_upcast (the stock weights overflow in fp16).
    return AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4, norm_num_groups=2, sample_size=64, scaling_factor=0.13025, force_upcast=True,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler  # torch stack: kept out of light commands

    # stabilityai/stable-diffusion-xl-base-1.0's scheduler config.
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                  interpolation_type="linear", use_karras_sigmas=False, prediction_type="epsilon")


def _motion_adapter():
    from diffusers import MotionAdapter  # torch stack: kept out of light commands

    seeded(24)
    return MotionAdapter(block_out_channels=UNET_CHANNELS, motion_layers_per_block=2, motion_norm_num_groups=2,
                         motion_num_attention_heads=4, motion_max_seq_length=32, use_motion_mid_block=False)


def build_xl(dest: Path) -> Path:
    """Write every SDXL-shaped part into `dest` (an empty folder)."""
    import torch  # torch stack: kept out of light commands
    from diffusers import StableDiffusionXLPipeline  # torch stack: kept out of light commands
    from safetensors.torch import save_file  # torch stack: kept out of light commands

    dest = Path(dest)
    text_encoder, text_encoder_2, tokenizer, tokenizer_2 = _text_encoders()
    unet = _unet()
    base = StableDiffusionXLPipeline(vae=_vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=_scheduler())
    base.save_pretrained(dest / XL_PARTS["base"], safe_serialization=True)
    _motion_adapter().save_pretrained(dest / XL_PARTS["motion"], safe_serialization=True)
    # Attention LoRA over the whole SDXL UNet (its deeper transformer stacks too), as LCM-LoRA-SDXL is.
    save_lora(unet, r".*(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$", "lcm", dest / "lcm-lora",
               "pytorch_lora_weights.safetensors", offset=25)
    # SDXL-Lightning ships full UNets as bare diffusers state dicts; perturb so it differs from the base.
    seeded(26)
    state = {k: (v + 0.02 * torch.randn_like(v)).contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(dest / XL_PARTS["lightning_unet"]))
    (dest / "xl.json").write_text(json.dumps({"xl_version": XL_VERSION, "parts": XL_PARTS}, indent=2))
    return dest
