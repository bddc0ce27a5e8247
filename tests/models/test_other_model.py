"""Nothing is specific to the kit's shapes: another SD1.5-like model with other widths renders the same
frames as diffusers' own pipeline, through a plain folder path and a motion adapter without a mid block."""
import numpy as np
import torch


def build_other_model(root, kit):
    from diffusers import (AutoencoderKL, DDIMScheduler, MotionAdapter, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(99)
    tokenizer = CLIPTokenizer.from_pretrained(str(kit / "base" / "tokenizer"))
    unet = UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2,
                                        num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False
                            ).save_pretrained(root / "base")
    adapter = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_norm_num_groups=4,
                            motion_num_attention_heads=2, use_motion_mid_block=False, motion_max_seq_length=24)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.05)  # proj_out starts at zero in diffusers: give the motion module an effect
    adapter.save_pretrained(root / "motion")
    return root


def test_other_model_matches_diffusers(kit, tmp_path):
    from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter

    from animate.rendering.renderer import Renderer
    from animate.spec import spec_from_fields

    root = build_other_model(tmp_path, kit)
    fields = dict(model=str(root / "base"), motion_adapter=str(root / "motion"), scheduler="euler", steps=3,
                  guidance=3.0, frames=6, width=32, height=40, seed=21, prompt="a heron", negative="fog")
    ours = Renderer(device="cpu").render(spec_from_fields(fields)[0], keep_float=True).float_frames

    pipe = AnimateDiffPipeline.from_pretrained(str(root / "base"),
                                               motion_adapter=MotionAdapter.from_pretrained(str(root / "motion")))
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    ref = pipe(prompt="a heron", negative_prompt="fog", num_frames=6, height=40, width=32, num_inference_steps=3,
               guidance_scale=3.0, generator=torch.Generator("cpu").manual_seed(21), output_type="np").frames[0]
    assert ours.shape == (6, 40, 32, 3)
    assert np.abs((ours * 255).round() - (ref * 255).round()).max() <= 1
