"""Image keyframes: a SparseCtrl clip equals diffusers' own AnimateDiffSparseControlNetPipeline given the same
images, and `check` refuses keyframes the clip can't hold before anything loads."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from animate.spec import ClipSpec, spec_from_fields
from cli_helpers import assert_one_error_line


def gradient(w, h, colour, flip=False):
    """An RGB image with a horizontal ramp in `colour` (a picture SparseCtrl can pin, not a flat field)."""
    ramp = np.linspace(0.1, 1.0, w, dtype=np.float32)[::-1 if flip else 1]
    img = (ramp[None, :, None] * np.float32(colour)[None, None, :]).repeat(h, axis=0)
    img[h // 3: h // 2, :] = 255 - img[h // 3: h // 2, :]  # a band, so rows differ too
    return img.round().astype(np.uint8)


def test_keyframe_clip_equals_sparsectrl_pipeline(kit, renderer, tiny_fields, tmp_path):
    from diffusers import AnimateDiffSparseControlNetPipeline, LCMScheduler, MotionAdapter, SparseControlNetModel

    width, height = 48, 32  # not square, and not the model's default size
    first = gradient(width, height, (230, 60, 40))
    wide = gradient(2 * width, height, (40, 80, 230), flip=True)  # twice as wide: `cover` crops its middle
    Image.fromarray(first).save(tmp_path / "first.png")
    Image.fromarray(wide).save(tmp_path / "last.png")
    fields = {**tiny_fields, "frames": 6, "width": width, "height": height, "guidance": 1.5,
              "adapters": [{"name": "lcm", "source": "tiny-lcm"},
                           {"name": "zoom", "source": "tiny-zoom-in", "weight": 0.6}],
              "init_image": "first.png", "keyframes": {"images": {5: "last.png"}, "scale": 0.8},
              "sparsectrl": "tiny"}
    spec = spec_from_fields(fields, base_dir=tmp_path)[0]
    assert sorted(spec.keyframes.images) == [0, 5] and spec.keyframes.fit == "cover"
    assert ClipSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # sidecars read back
    ours = renderer.render(spec, keep_float=True)
    assert ours.frames.shape == (6, height, width, 3)
    assert renderer.load_counts.get("sparsectrl") == 1

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    controlnet = SparseControlNetModel.from_pretrained(str(kit / "sparsectrl-rgb"))
    pipe = AnimateDiffSparseControlNetPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter,
                                                               controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(str(kit / "lcm-lora"), weight_name="pytorch_lora_weights.safetensors", adapter_name="lcm")
    pipe.load_lora_weights(str(kit / "motion-lora-zoom-in"), weight_name="diffusion_pytorch_model.safetensors",
                           adapter_name="zoom")
    pipe.set_adapters(["lcm", "zoom"], [1.0, 0.6])
    # The same inputs, computed by hand: the first image as it is, the middle of the wide one.
    images = [Image.fromarray(first), Image.fromarray(wide[:, width // 2: width // 2 + width])]
    # diffusers samples the keyframes' VAE latents from the global RNG: the renderer seeds it with the clip's seed.
    torch.manual_seed(spec.seed)
    ref = pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=spec.frames,
               height=height, width=width, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
               conditioning_frames=images, controlnet_frame_indices=[0, 5], controlnet_conditioning_scale=0.8,
               generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np").frames[0]
    assert np.abs((ours.float_frames * 255).round() - (ref * 255).round()).max() <= 1

    # The keyframes matter: other images, or the same images at other frames, give other frames.
    swapped = spec_from_fields({**fields, "init_image": "last.png", "keyframes": {5: "first.png"}},
                               base_dir=tmp_path)[0]
    other = renderer.render(swapped, keep_float=True).float_frames
    assert np.abs(other - ours.float_frames).max() > 1e-3


def test_render_key_follows_image_content(kit, tiny_fields, tmp_path):
    from animate.run.jobs import render_key

    Image.fromarray(gradient(32, 32, (200, 0, 0))).save(tmp_path / "a.png")
    fields = {**tiny_fields, "keyframes": {0: "a.png"}, "sparsectrl": "tiny"}
    key = render_key(spec_from_fields(fields, base_dir=tmp_path)[0], "fp32")
    assert render_key(spec_from_fields({**fields, "keyframes": {0: "a.png"}}, base_dir=tmp_path)[0], "fp32") == key
    Image.fromarray(gradient(32, 32, (0, 200, 0))).save(tmp_path / "a.png")  # same name, new picture
    assert render_key(spec_from_fields(fields, base_dir=tmp_path)[0], "fp32") != key
    plain = {k: v for k, v in fields.items() if k not in ("keyframes", "sparsectrl")}
    assert render_key(spec_from_fields(plain, base_dir=tmp_path)[0], "fp32") != key


SCRIPT = """version: 1
defaults:
  preset: tiny
  sparsectrl: tiny
clips:
  - name: still
    frames: 16
    prompt: a lighthouse at dusk
    keyframes: {0: first.png, 20: last.png}
"""


def _check(tmp_path, text):
    from animate.cli import main

    script = tmp_path / "kf.yaml"
    script.write_text(text)
    return CliRunner().invoke(main, ["check", str(script)]), script


def test_check_refuses_a_keyframe_past_the_clip(kit, tmp_path):
    for name in ("first.png", "last.png"):
        Image.fromarray(gradient(32, 32, (90, 90, 90))).save(tmp_path / name)
    result, script = _check(tmp_path, SCRIPT)
    assert_one_error_line(result, tmp_path / "out", f"{script}:9:", "clips[0].keyframes[20]",
                          "keyframe 20 is past the last frame (15)", "use keys below 16 or raise `frames`")


def test_check_refuses_missing_and_unreadable_images(kit, tmp_path):
    text = SCRIPT.replace("20: last.png", "15: last.png")
    result, script = _check(tmp_path, text)  # neither image exists
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "clips[0].keyframes[0]: no such image file: 'first.png'" in result.output
    Image.fromarray(gradient(32, 32, (90, 90, 90))).save(tmp_path / "first.png")
    (tmp_path / "last.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result, _ = _check(tmp_path, text)
    assert_one_error_line(result, tmp_path / "out", "clip still", "keyframes[15]: cannot read image",
                          "last.png", "give a PNG, JPEG or WebP image file")


@pytest.mark.parametrize("extra, fragment", [
    ("    loop: true\n", "image keyframes can't loop"),
    ("    pose: {source: first.png, controlnet: tiny}\n", "image keyframes and pose guidance can't be combined"),
    ("    context: {length: 8}\n", "context length is 8 for 16 frames"),
])
def test_check_refuses_what_sparsectrl_cannot_do(kit, tmp_path, extra, fragment):
    for name in ("first.png", "last.png"):
        Image.fromarray(gradient(32, 32, (90, 90, 90))).save(tmp_path / name)
    result, script = _check(tmp_path, SCRIPT.replace("20: last.png", "15: last.png") + extra)
    assert_one_error_line(result, tmp_path / "out", f"{script}:9:", "clips[0].keyframes", fragment)


def test_single_file_sparsectrl_renders_like_the_folder(kit, renderer, tiny_fields, tmp_path):
    """`tiny-sparsectrl-file` (the original checkpoint's key layout + a config folder) through from_single_file
    gives the same clip as the diffusers folder."""
    Image.fromarray(gradient(32, 32, (200, 120, 0))).save(tmp_path / "a.png")
    frames = []
    for sparsectrl in ("tiny-sparsectrl", "tiny-sparsectrl-file"):
        spec = spec_from_fields({**tiny_fields, "frames": 4, "init_image": "a.png", "sparsectrl": sparsectrl},
                                base_dir=tmp_path)[0]
        assert spec.keyframes.sparsectrl.kind == ("file" if sparsectrl.endswith("file") else "folder")
        frames.append(renderer.render(spec, keep_float=True).float_frames)
    # The file converts to exactly the folder's weights; the frames may still differ in the last float bits,
    # since the two loads place the tensors differently in memory and CPU kernels then sum in another order.
    from diffusers import SparseControlNetModel

    folder = SparseControlNetModel.from_pretrained(str(kit / "sparsectrl-rgb")).state_dict()
    file = SparseControlNetModel.from_single_file(str(kit / "sparsectrl-rgb.safetensors"),
                                                  config=str(kit / "sparsectrl-rgb")).state_dict()
    assert folder.keys() == file.keys() and all(torch.equal(folder[k], file[k]) for k in folder)
    assert np.abs(frames[0] - frames[1]).max() <= 1e-5


def test_fp16_keyframe_clip_matches_fp32(kit, renderer, tiny_fields, tmp_path):
    """In fp16 (the GPU default) the pipeline hands the fp32 VAE fp16 keyframe images and wants fp16 latents
    back; the clip renders and stays within rounding of the fp32 one."""
    from animate.rendering.renderer import Renderer

    Image.fromarray(gradient(32, 32, (200, 120, 0))).save(tmp_path / "a.png")
    Image.fromarray(gradient(32, 32, (0, 120, 200), flip=True)).save(tmp_path / "b.png")
    spec = spec_from_fields({**tiny_fields, "frames": 4, "keyframes": {0: "a.png", 3: "b.png"}, "sparsectrl": "tiny"},
                            base_dir=tmp_path)[0]
    half = Renderer(device="cpu", dtype="fp16").render(spec, keep_float=True)
    full = renderer.render(spec, keep_float=True)
    assert "numeric_retry" not in half.info
    assert np.abs(half.float_frames - full.float_frames).max() <= 1 / 255


def test_frame_keys_from_json_and_toml_scripts(kit, tmp_path):
    import animate

    for name in ("a.png", "b.png"):
        Image.fromarray(gradient(32, 32, (90, 90, 90))).save(tmp_path / name)
    (tmp_path / "s.json").write_text(json.dumps({"version": 1, "clips": [{
        "name": "c", "preset": "tiny", "prompt": "x", "sparsectrl": "tiny",
        "keyframes": {"images": {"0": "a.png", "15": "b.png"}, "scale": 0.5}}]}))
    (tmp_path / "s.toml").write_text('version = 1\n[[clips]]\nname = "c"\npreset = "tiny"\nprompt = "x"\n'
                                     'sparsectrl = "tiny"\nkeyframes = {"0" = "a.png", "15" = "b.png"}\n')
    for script in ("s.json", "s.toml"):
        spec = animate.load_specs(tmp_path / script)[0]
        assert spec.keyframes.images == {0: str(tmp_path / "a.png"), 15: str(tmp_path / "b.png")}, script
