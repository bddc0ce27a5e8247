"""A motion adapter (or ControlNet) fits a base when its shape matches the base UNet's, as diffusers decides in
UNetMotionModel.from_unet2d; the family label is only how the message names them."""
import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from animate.cli import main
from cli_helpers import assert_one_error_line


@pytest.fixture(scope="module")
def two_block_xl(kit, tmp_path_factory):
    """An SDXL-shaped base whose UNet has two blocks, and a motion adapter built for it: a shape the block-count
    rule called "SD1.5" and that diffusers' AnimateDiffSDXLPipeline runs."""
    from diffusers import MotionAdapter, UNet2DConditionModel

    from animate.models.tiny_xl import TEXT_HIDDEN, TIME_EMBED_DIM, PROJECTION_DIM, ensure_xl

    xl = ensure_xl(kit)
    root = tmp_path_factory.mktemp("xl2")
    base = root / "base"
    shutil.copytree(xl / "base", base)
    shutil.rmtree(base / "unet")
    UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1), attention_head_dim=(2, 4), use_linear_projection=True,
        cross_attention_dim=sum(TEXT_HIDDEN), norm_num_groups=2, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM, projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM
        + PROJECTION_DIM,
    ).save_pretrained(base / "unet", safe_serialization=True)
    MotionAdapter(block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=2,
                  motion_num_attention_heads=4, motion_max_seq_length=32,
                  use_motion_mid_block=False).save_pretrained(root / "motion", safe_serialization=True)
    MotionAdapter(block_out_channels=(8, 8), motion_layers_per_block=1, motion_norm_num_groups=2,
                  motion_num_attention_heads=4, motion_max_seq_length=32,
                  use_motion_mid_block=False).save_pretrained(root / "motion-narrow", safe_serialization=True)
    return root


def _script(tmp_path, root, adapter):
    script = tmp_path / "fit.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "clips": [{
        "name": "c1", "prompt": "a red fox", "model": str(root / "base"), "motion_adapter": str(root / adapter),
        "scheduler": "euler", "steps": 1, "guidance": 1.0, "frames": 2, "width": 32, "height": 32, "seed": 1,
        "outputs": ["png"]}]}))
    return script


def test_an_sdxl_adapter_with_another_block_count_renders_on_the_base_it_was_built_for(tmp_path, two_block_xl):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(_script(tmp_path, two_block_xl, "motion")), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "fit" / "c1.json").read_text())  # the sidecar is written
    frames = sorted((out / "fit" / "c1").glob("*.png"))
    assert len(frames) == 2
    from PIL import Image

    assert np.asarray(Image.open(frames[0])).shape == (32, 32, 3)


@pytest.mark.parametrize("command", ["check", "render"])
def test_an_adapter_with_other_channels_is_refused_naming_both_shapes(tmp_path, two_block_xl, command):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [command, str(_script(tmp_path, two_block_xl, "motion-narrow")),
                                       "--out", str(out)])
    assert_one_error_line(result, out, "clip c1", "motion_adapter", "2 blocks of [8, 8] channels",
                          "has 2 blocks of [8, 16] channels")
    assert not (out / "fit" / "c1").exists()
