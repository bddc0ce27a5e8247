"""Context windows over the whole UNet (`context: {blend: unet}`, the default for long clips).

diffusers' FreeNoise blends windows inside every motion module, so the whole clip passes through every UNet
layer at once and its skip connections hold full-clip feature maps: memory grows with the clip (at 1024 frames
on the tiny kit, 32 KiB a frame against 12 KiB of pixels). Here the UNet instead denoises one window of frames at
a time and the windows' noise predictions are blended frame by frame with the same weights FreeNoise uses
(`flat`, `pyramid`, `delayed_reverse_sawtooth`), as AnimateDiff-Evolved, sd-webui-animatediff and prompt-travel
do. What the UNet holds is then one window's activations whatever the clip's length; what grows with the clip
is the latents, the blended prediction, the scheduler's buffers and, for travel clips, the per-frame prompt
embeddings (one prompt reaches the windows as one embedding per batch entry: `compact_prompts`). A pose clip's
ControlNet runs per window inside the same loop (`DeferredControl`). The motion modules see exactly one window,
which FreeNoise's blocks treat as the plain path (motion.freenoise).

The wrapper goes on the UNet instance once (the stack's pipelines share it) and does nothing for a clip whose
plan is None, so clips blended in the motion modules run diffusers' forward untouched.
"""
from __future__ import annotations

import inspect
import types

PER_FRAME_ARGS = ("encoder_hidden_states",)  # (batch·frames, …) tensors the window takes its frames from


def set_unet_windows(unet, plan, controlnet=None) -> None:
    """Denoise the next clips window by window over `plan.windows` (a ContextPlan), or, for None or a plan of
    one window, with the UNet's own forward. A pose `controlnet` (a 2D ControlNetModel) then runs window by
    window too, inside the UNet's window loop (`defer_controlnet`)."""
    if controlnet is not None:
        defer_controlnet(controlnet, unet)
    if "forward" not in vars(unet):
        signature = inspect.signature(unet.forward)

        def forward(*args, **kwargs):
            # The class's forward, looked up at each call: what patches or wraps it later still runs.
            original = types.MethodType(type(unet).forward, unet)
            windows = unet._animate_unet_windows
            if windows is None:
                return original(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            return windowed_forward(original, windows, dict(bound.arguments))

        unet.forward = forward
    unet._animate_unet_windows = plan if plan is not None and len(plan.windows) > 1 else None


def windowed_forward(forward, plan, arguments: dict):
    """One UNet call over the clip as a weighted blend of one call per window."""
    import torch
    from diffusers.models.attention import FreeNoiseTransformerBlock
    from diffusers.models.unets.unet_motion_model import UNetMotionOutput

    sample = arguments.pop("sample")
    return_dict = arguments.pop("return_dict", True)
    frames = sample.shape[2]
    # diffusers' own weights for a window (the method reads no block state), so both blends weigh frames alike.
    weights = torch.tensor(FreeNoiseTransformerBlock._get_frame_weights(None, plan.length, plan.weighting),
                           device=sample.device, dtype=torch.float32)
    total = None
    count = torch.zeros(frames, device=sample.device, dtype=torch.float32)
    for start, end in plan.windows:
        part = dict(arguments)
        for name in PER_FRAME_ARGS:
            part[name] = _frames_of(arguments.get(name), frames, start, end, batch=sample.shape[0])
        residuals = arguments.get("down_block_additional_residuals")  # a pose ControlNet's, per frame
        if isinstance(residuals, DeferredControl):
            down, mid = residuals.window(frames, start, end)
            part["down_block_additional_residuals"], part["mid_block_additional_residual"] = down, mid
        else:
            if residuals is not None:
                part["down_block_additional_residuals"] = tuple(_frames_of(r, frames, start, end)
                                                                for r in residuals)
            part["mid_block_additional_residual"] = _frames_of(arguments.get("mid_block_additional_residual"),
                                                               frames, start, end)
        pred = forward(sample[:, :, start:end], return_dict=False, **part)[0]
        w = weights[: end - start]
        if total is None:
            total = torch.zeros((*pred.shape[:2], frames, *pred.shape[3:]), device=pred.device, dtype=torch.float32)
        total[:, :, start:end] += pred.float() * w.view(1, 1, -1, 1, 1)
        count[start:end] += w
        pred = None
    out = total.div_(count.view(1, 1, -1, 1, 1)).to(sample.dtype)  # in place: one clip-sized buffer, not two
    return UNetMotionOutput(sample=out) if return_dict else (out,)


class DeferredControl:
    """A ControlNet call not made yet: diffusers' pipeline runs the ControlNet on the whole clip and hands its
    residuals to the UNet, which would hold full-clip feature maps at every resolution of the down path. The
    UNet's window loop makes the call per window instead, on the window's frames of the ControlNet's per-frame
    inputs (the ControlNet is 2D: each frame's residuals depend on that frame alone, so they are the same)."""

    PER_FRAME = ("sample", "controlnet_cond", "encoder_hidden_states")

    def __init__(self, forward, arguments: dict):
        self.forward, self.arguments = forward, arguments

    def window(self, frames: int, start: int, end: int):
        part = dict(self.arguments)
        batch = part["sample"].shape[0] // frames
        for name in self.PER_FRAME:
            part[name] = _frames_of(part.get(name), frames, start, end, batch=batch if name != "sample" else None)
        part["return_dict"] = False
        return self.forward(**part)


def can_defer(controlnet) -> bool:
    """Whether `controlnet` runs window by window under the UNet blend: a plain 2D ControlNetModel does, unless
    accelerate's offload hooks manage it (they move models between devices around each call of theirs)."""
    from diffusers import ControlNetModel

    return isinstance(controlnet, ControlNetModel) and getattr(controlnet, "_hf_hook", None) is None


def defer_controlnet(controlnet, unet) -> None:
    """Make `controlnet`'s calls DeferredControl (both of its outputs) while `unet` denoises window by window
    (looked up at each call, so a clip without windows, or any other caller, gets the ControlNet's own forward).
    Outside guess mode only (its pipeline reshapes the residuals) and only where `can_defer`."""
    if not can_defer(controlnet):
        vars(controlnet).pop("_animate_defer_to", None)
        return
    if "forward" not in vars(controlnet):
        signature = inspect.signature(controlnet.forward)

        def forward(*args, **kwargs):
            original = types.MethodType(type(controlnet).forward, controlnet)
            arguments = dict(signature.bind(*args, **kwargs).arguments)
            windows = getattr(vars(controlnet).get("_animate_defer_to"), "_animate_unet_windows", None)
            if windows is None or not can_defer(controlnet) or arguments.get("guess_mode") \
                    or arguments.get("return_dict", True):
                # Called whole (offload hooks taken after the clip was set up): one prompt embedding per batch
                # entry (compact_prompts) goes back to one per frame.
                sample, text = arguments["sample"], arguments.get("encoder_hidden_states")
                if text is not None and text.shape[0] < sample.shape[0] and sample.shape[0] % text.shape[0] == 0:
                    arguments["encoder_hidden_states"] = text.repeat_interleave(sample.shape[0] // text.shape[0], 0)
                return original(**arguments)
            deferred = DeferredControl(original, arguments)
            return deferred, deferred

        controlnet.forward = forward
    vars(controlnet)["_animate_defer_to"] = unet  # a plain attribute: setattr would make the UNet its submodule


def compact_prompts(pipe, on: bool) -> None:
    """For a UNet-blended clip with one prompt, hand the UNet one embedding per batch entry instead of diffusers'
    FreeNoise copy per frame (77 × the text width a frame and CFG half: on SD1.5 in fp16 with CFG 236 KiB a
    frame, the largest thing left that grows with the clip); the windows repeat it for their frames. Travel
    prompts (a mapping) keep diffusers' per-frame embeddings. `on=False` gives diffusers' method back."""
    if on:
        pipe._encode_prompt_free_noise = types.MethodType(_compact_encode, pipe)
    else:
        vars(pipe).pop("_encode_prompt_free_noise", None)


def _compact_encode(self, prompt, num_frames, device, num_videos_per_prompt, do_classifier_free_guidance,
                    negative_prompt=None, prompt_embeds=None, negative_prompt_embeds=None, lora_scale=None,
                    clip_skip=None):
    import torch

    if isinstance(prompt, dict) or isinstance(negative_prompt, dict) or prompt_embeds is not None:
        return type(self)._encode_prompt_free_noise(
            self, prompt, num_frames, device, num_videos_per_prompt, do_classifier_free_guidance, negative_prompt,
            prompt_embeds, negative_prompt_embeds, lora_scale, clip_skip)
    positive, negative = self.encode_prompt(prompt, device, num_videos_per_prompt, do_classifier_free_guidance,
                                            negative_prompt or "", lora_scale=lora_scale, clip_skip=clip_skip)
    return (torch.cat([negative, positive]) if do_classifier_free_guidance else positive), negative


def _frames_of(tensor, frames: int, start: int, end: int, batch: int | None = None):
    """Rows start..end of each batch entry of a (batch·frames, …) tensor; a (batch, …) tensor repeated for the
    window's frames when `batch` says so (compact_prompts); anything else as it is (None)."""
    if batch is not None and tensor is not None and tensor.shape[0] == batch:
        return tensor.repeat_interleave(end - start, dim=0)
    if tensor is None or not hasattr(tensor, "shape") or tensor.shape[0] % frames or tensor.shape[0] < frames:
        return tensor
    batch = tensor.shape[0] // frames
    return tensor.reshape(batch, frames, *tensor.shape[1:])[:, start:end].reshape(batch * (end - start),
                                                                                  *tensor.shape[1:])
