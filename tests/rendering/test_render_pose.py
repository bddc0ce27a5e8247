"""A pose clip equals diffusers' own AnimateDiffControlNetPipeline given the same conditioning frames."""
import numpy as np
import torch
from PIL import Image

from animate.spec import spec_from_fields


def skeleton_frames(n, size):
    frames = []
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        x = 4 + 2 * i
        img[8:24, x:x + 3] = (255, 0, 85)  # a moving limb
        img[4:8, x - 1:x + 4] = (0, 255, 0)
        frames.append(Image.fromarray(img))
    return frames


def test_pose_clip_equals_controlnet_pipeline(kit, renderer, tiny_fields, tmp_path):
    from diffusers import AnimateDiffControlNetPipeline, ControlNetModel, LCMScheduler, MotionAdapter

    fields = {**tiny_fields, "frames": 6, "guidance": 1.5,
              "adapters": [{"name": "lcm", "source": "tiny-lcm"}, {"name": "zoom", "source": "tiny-zoom-in",
                                                                   "weight": 0.6}],
              "pose": {"source": str(tmp_path), "controlnet": "tiny", "scale": 0.8, "start": 0.0, "end": 1.0}}
    spec = spec_from_fields(fields)[0]
    cond = skeleton_frames(spec.frames, spec.width)
    ours = renderer.render(spec, pose_frames=cond, keep_float=True).float_frames

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    controlnet = ControlNetModel.from_pretrained(str(kit / "controlnet-openpose"))
    pipe = AnimateDiffControlNetPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter,
                                                         controlnet=controlnet)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(str(kit / "lcm-lora"), weight_name="pytorch_lora_weights.safetensors", adapter_name="lcm")
    pipe.load_lora_weights(str(kit / "motion-lora-zoom-in"), weight_name="diffusion_pytorch_model.safetensors",
                           adapter_name="zoom")
    pipe.set_adapters(["lcm", "zoom"], [1.0, 0.6])
    ref = pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=spec.frames,
               height=spec.height, width=spec.width, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
               conditioning_frames=cond, controlnet_conditioning_scale=0.8,
               generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np").frames[0]
    assert np.abs((ours * 255).round() - (ref * 255).round()).max() <= 1
    # The pose matters: other conditioning gives other frames.
    other = renderer.render(spec, pose_frames=skeleton_frames(spec.frames, spec.width)[::-1], keep_float=True)
    assert np.abs(other.float_frames - ours).max() > 1e-4


def test_single_file_controlnet_renders_like_the_folder(renderer, tiny_fields, tmp_path):
    """`tiny-openpose-file` (original `control_model.*` single file + config folder) through the renderer's
    from_single_file path gives the same clip as the diffusers folder."""
    frames = []
    for controlnet in ("tiny-openpose", "tiny-openpose-file"):
        fields = {**tiny_fields, "frames": 4, "pose": {"source": str(tmp_path), "controlnet": controlnet,
                                                       "scale": 0.8}}
        spec = spec_from_fields(fields)[0]
        assert spec.pose.controlnet.kind == ("file" if controlnet.endswith("file") else "folder")
        frames.append(renderer.render(spec, pose_frames=skeleton_frames(spec.frames, spec.width),
                                      keep_float=True).float_frames)
    assert np.abs(frames[0] - frames[1]).max() == 0
