"""A video-to-video clip equals diffusers' own AnimateDiffVideoToVideo(ControlNet)Pipeline called with the same
components, frames, strength, adapters, weights and seed; a refine clip equals a video-to-video call over the
first pass's frames at the larger size."""
import functools

import numpy as np
import pytest
import torch
from PIL import Image
from test_render_pose import skeleton_frames
from video_helpers import constant_rate, write_video

from animate.spec import spec_from_fields
from animate.rendering.video_input import sample

LORAS = [{"name": "lcm", "source": "tiny-lcm"}, {"name": "zoom", "source": "tiny-zoom-in", "weight": 0.6}]
LORA_FILES = {"lcm": ("lcm-lora", "pytorch_lora_weights.safetensors"),
              "zoom": ("motion-lora-zoom-in", "diffusion_pytorch_model.safetensors")}


@functools.lru_cache(maxsize=None)
def reference_pipe(kit, controlnet=False, travel=False):
    """What a diffusers user would write by hand (prompt travel needs diffusers' FreeNoise on)."""
    from diffusers import (AnimateDiffVideoToVideoControlNetPipeline, AnimateDiffVideoToVideoPipeline,
                           ControlNetModel, LCMScheduler, MotionAdapter)

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    if controlnet:
        cn = ControlNetModel.from_pretrained(str(kit / "controlnet-openpose"))
        pipe = AnimateDiffVideoToVideoControlNetPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter,
                                                                         controlnet=cn)
    else:
        pipe = AnimateDiffVideoToVideoPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    if travel:  # before the LoRAs: diffusers converts the motion blocks by copying plain state dicts
        pipe.enable_free_noise(context_length=4, context_stride=3)  # one window over the 4 frames
    for lora in LORAS:
        folder, weight_name = LORA_FILES[lora["name"]]
        pipe.load_lora_weights(str(kit / folder), weight_name=weight_name, adapter_name=lora["name"])
    pipe.set_adapters([lo["name"] for lo in LORAS], [lo.get("weight", 1.0) for lo in LORAS])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, spec, video, **kw):
    return pipe(video=video, prompt=spec.prompt, negative_prompt=spec.negative, height=spec.height,
                width=spec.width, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                strength=spec.init_video.strength if spec.init_video else kw.pop("strength"),
                enforce_inference_steps=kw.pop("enforce", True),
                generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np", **kw).frames[0]


def u8(frames):
    return (np.asarray(frames) * 255).round()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v2v") / "src.mkv", constant_rate(12, 12), width=60, height=40)


def v2v_fields(tiny_fields, source, **init):
    return {**tiny_fields, "frames": 4, "fps": 12.0, "width": 48, "height": 32, "steps": 4, "guidance": 1.5,
            "adapters": LORAS, "init_video": {"source": str(source), "strength": 0.5, "fit": "cover", **init}}


# Diffusers' default step semantics (int(steps × strength) run) with prompt travel; ours (steps run) plain.
@pytest.mark.parametrize("enforce", [True, False])
def test_video_clip_equals_diffusers_v2v(kit, renderer, tiny_fields, source, enforce):
    travel = not enforce
    prompt = {0: "a red fox in snow", 3: "a blue bird at dusk"} if travel else tiny_fields["prompt"]
    spec = spec_from_fields({**v2v_fields(tiny_fields, source, enforce_inference_steps=enforce),
                             "prompt": prompt})[0]
    result = renderer.render(spec, keep_float=True)
    assert result.frames.shape == (4, 32, 48, 3)  # not square, not 512, and it stays that size
    video = [Image.fromarray(im) for im in sample(spec).images]
    ref = reference(reference_pipe(kit, travel=travel), spec, video, enforce=enforce)
    assert ref.shape == (4, 32, 48, 3)
    assert np.abs(u8(result.float_frames) - u8(ref)).max() <= 1
    assert result.info["init_video"]["denoising_steps"] == (4 if enforce else 2)
    assert [m["source_frame"] for m in result.info["source_frames"]] == [0, 1, 2, 3]
    # The source matters: a stronger pass moves further from it.
    other = renderer.render(spec_from_fields({**v2v_fields(tiny_fields, source, strength=0.9,
                                                           enforce_inference_steps=enforce),
                                              "prompt": prompt})[0], keep_float=True)
    assert np.abs(other.float_frames - result.float_frames).max() > 1e-3


def test_pose_video_clip_equals_diffusers_v2v_controlnet(kit, renderer, tiny_fields, source, tmp_path):
    fields = {**v2v_fields(tiny_fields, source),
              "pose": {"source": str(tmp_path), "controlnet": "tiny", "scale": 0.8}}
    spec = spec_from_fields(fields)[0]
    cond = [im.resize((48, 32)) for im in skeleton_frames(spec.frames, 32)]
    ours = renderer.render(spec, pose_frames=cond, keep_float=True).float_frames
    video = [Image.fromarray(im) for im in sample(spec).images]
    ref = reference(reference_pipe(kit, controlnet=True), spec, video, conditioning_frames=cond,
                    controlnet_conditioning_scale=0.8)
    assert ours.shape == ref.shape == (4, 32, 48, 3)
    assert np.abs(u8(ours) - u8(ref)).max() <= 1


def test_refine_equals_v2v_over_the_first_pass(kit, renderer, tiny_fields, source):
    fields = v2v_fields(tiny_fields, source)
    first = renderer.render(spec_from_fields(fields)[0])
    spec = spec_from_fields({**fields, "refine": {"scale": 1.5, "strength": 0.5, "steps": 2}})[0]
    refined = renderer.render(spec, keep_float=True)
    assert refined.frames.shape == (4, 48, 72, 3)
    second = spec_from_fields({**fields, "width": 72, "height": 48, "steps": 2})[0]
    ref = reference(reference_pipe(kit), second, [Image.fromarray(f) for f in first.frames])
    assert np.abs(u8(refined.float_frames) - u8(ref)).max() <= 1
    info = refined.info
    assert info["first_pass"]["width"] == 48 and info["refine"]["width"] == 72 and info["refine"]["steps"] == 2
    assert len(info["source_frames"]) == 4
