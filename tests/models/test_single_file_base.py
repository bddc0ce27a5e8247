"""The tiny base as an original-format (LDM / A1111) single file loads through diffusers' real
`from_single_file` path, offline, into exactly the weights of the diffusers folder."""
import pytest
import torch


def _roundtrip(unet, vae, text_encoder=None):
    """Our LDM layout → diffusers' own single-file converters → the state dicts we started from."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
    )

    from animate.models.tiny_ldm import to_original_checkpoint

    text_state = text_encoder.state_dict() if text_encoder is not None else {}
    checkpoint = to_original_checkpoint(unet.state_dict(), vae.state_dict(), text_state,
                                        dict(unet.config), dict(vae.config))
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."))
               for k in checkpoint)
    back = [(unet.state_dict(), convert_ldm_unet_checkpoint(checkpoint, dict(unet.config))),
            (vae.state_dict(), convert_ldm_vae_checkpoint(checkpoint, dict(vae.config)))]
    if text_encoder is not None:
        clip = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(checkpoint).items()}
        back.append((text_state, clip))
    for original, converted in back:
        assert set(converted) == set(original)
        for key, value in original.items():
            assert torch.equal(converted[key], value), key
    return checkpoint


def test_layout_is_general():
    """Other block counts / layers per block / attention placement map back through diffusers' converters."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8, 8), layers_per_block=1, sample_size=16, cross_attention_dim=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(4, 8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    )
    checkpoint = _roundtrip(unet, vae)
    # Spot-check the LDM numbering for 3 blocks x 1 layer: downsamplers at input_blocks 2 and 4, an
    # upsampler after attention (slot 2) in output block 1, and the decoder's up blocks reversed.
    assert "model.diffusion_model.input_blocks.4.0.op.weight" in checkpoint
    assert "model.diffusion_model.output_blocks.3.2.conv.weight" in checkpoint
    assert "first_stage_model.decoder.up.2.upsample.conv.weight" in checkpoint
    assert checkpoint["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (8, 8, 1, 1)


def test_uneven_layers_per_block_refused():
    from animate.models.tiny_ldm import convert_unet

    with pytest.raises(ValueError, match="layers_per_block"):
        convert_unet({}, {"layers_per_block": [1, 2]})


@pytest.fixture(scope="module")
def single_file(kit, tmp_path_factory):
    from animate.models.tiny_ldm import write_single_file

    return write_single_file(kit / "base", tmp_path_factory.mktemp("ldm") / "base.safetensors")


def test_kit_base_roundtrips(kit):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    base = kit / "base"
    _roundtrip(UNet2DConditionModel.from_pretrained(base, subfolder="unet"),
               AutoencoderKL.from_pretrained(base, subfolder="vae"),
               CLIPTextModel.from_pretrained(base, subfolder="text_encoder"))


def test_single_file_loads_like_the_folder(kit, single_file):
    from diffusers import AnimateDiffPipeline, MotionAdapter

    adapter = MotionAdapter.from_pretrained(kit / "motion-adapter")
    from_file = AnimateDiffPipeline.from_single_file(str(single_file), motion_adapter=adapter,
                                                     config=str(kit / "base"))
    from_folder = AnimateDiffPipeline.from_pretrained(kit / "base", motion_adapter=adapter)

    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(from_file, name).state_dict(), getattr(from_folder, name).state_dict()
        assert set(a) == set(b), name
        for key in a:
            assert a[key].device.type != "meta", f"{name}.{key} was never loaded"
            assert torch.equal(a[key], b[key]), f"{name}.{key}"
    assert dict(from_file.scheduler.config) == dict(from_folder.scheduler.config)

    frames = []
    for pipe in (from_file, from_folder):
        pipe.set_progress_bar_config(disable=True)
        out = pipe(prompt="a red fox in snow", negative_prompt="blurry", num_frames=4, height=32, width=32,
                   num_inference_steps=2, guidance_scale=7.5, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(3))
        frames.append(torch.as_tensor(out.frames))
    assert frames[0].shape[:2] == (1, 4)
    assert (frames[0] - frames[1]).abs().max() <= 1e-6
