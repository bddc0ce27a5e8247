"""The tiny OpenPose ControlNet as one original-format file (lllyasviel's `control_model.*` layout) loads through
diffusers' real `ControlNetModel.from_single_file`, offline, into exactly the weights of the diffusers folder."""
import pytest
import torch


def test_layout_is_general():
    """Other block counts / layers per block / hint encoders map back through diffusers' own converter."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    from animate.models.tiny_ldm import CONTROLNET_PREFIX, convert_controlnet

    torch.manual_seed(0)
    net = ControlNetModel(
        block_out_channels=(4, 8, 8), layers_per_block=1, in_channels=4, cross_attention_dim=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        conditioning_embedding_out_channels=(4, 4, 8, 8), norm_num_groups=2, conditioning_channels=3,
    )
    state = net.state_dict()
    checkpoint = {CONTROLNET_PREFIX + k: v for k, v in convert_controlnet(state, dict(net.config)).items()}
    # 4 hint channels → conv_in, 6 blocks, conv_out: exactly cldm's 15-layer input_hint_block; 3 blocks x 1 layer
    # → input_blocks 0-5 (the last block has no downsampler) and one zero conv each; downsamplers at 2 and 4.
    assert {k for k in checkpoint if "input_hint_block" in k and k.endswith("weight")} == {
        f"control_model.input_hint_block.{i}.weight" for i in range(0, 15, 2)}
    assert "control_model.zero_convs.5.0.weight" in checkpoint and "control_model.zero_convs.6.0.weight" not in checkpoint
    assert "control_model.input_blocks.4.0.op.weight" in checkpoint
    back = convert_controlnet_checkpoint(checkpoint, dict(net.config))
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key


def test_too_long_hint_encoder_refused():
    from animate.models.tiny_ldm import convert_controlnet

    with pytest.raises(ValueError, match="input_hint_block"):
        convert_controlnet({"controlnet_cond_embedding.blocks.6.weight": torch.zeros(1)}, {"layers_per_block": 1})


def test_kit_file_loads_like_the_folder(kit):
    from diffusers import ControlNetModel
    from safetensors import safe_open

    from animate.models.sources import resolve_source

    src = resolve_source("tiny-openpose-file", field="pose.controlnet")
    assert (src.kind, src.role, src.config) == ("file", "controlnet", str(kit / "controlnet-openpose"))
    with safe_open(src.ref, framework="pt") as fh:
        keys = list(fh.keys())
    assert all(k.startswith("control_model.") for k in keys)
    assert {"control_model.input_hint_block.14.weight", "control_model.middle_block_out.0.weight",
            "control_model.zero_convs.0.0.weight", "control_model.time_embed.0.weight"} <= set(keys)

    from_file = ControlNetModel.from_single_file(src.ref, config=src.config).state_dict()
    from_folder = ControlNetModel.from_pretrained(kit / "controlnet-openpose").state_dict()
    assert set(from_file) == set(from_folder) and len(keys) == len(from_folder)
    for key, value in from_folder.items():
        assert from_file[key].device.type != "meta", f"{key} was never loaded"
        assert torch.equal(from_file[key], value), key
