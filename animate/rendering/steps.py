"""The per-step side of a clip: how many UNet passes it takes, and the step callback that moves weight schedules,
the pose scale and the loop's frame roll between steps."""
from __future__ import annotations

from typing import TYPE_CHECKING

from animate.rendering.video_input import denoising_steps as video_steps
from motion.context import LoopShift
from motion.loras import weight_at

if TYPE_CHECKING:
    from animate.spec import ClipSpec


def denoising_steps(spec: ClipSpec) -> int:
    """UNet passes a clip takes: its steps, once per FreeInit iteration (fast: 1/n, 2/n … of the steps)."""
    if spec.init_video is not None:
        return video_steps(spec)
    fi = spec.free_init
    if not fi or fi.iters <= 1:
        return spec.steps
    if fi.fast:
        return sum(max(1, int(spec.steps / fi.iters * (i + 1))) for i in range(fi.iters))
    return spec.steps * fi.iters


class Steps:
    """The per-step callback of one clip: weight schedules and the pose-scale schedule for the next step, the
    loop's frame roll, progress. FreeInit runs the steps once per iteration; each starts again at progress 0."""

    def __init__(self, renderer, spec: ClipSpec, pipe):
        self.renderer, self.spec, self.done = renderer, spec, 0
        self.total = denoising_steps(spec)
        self.iteration, self.iterations = 0, spec.free_init.iters if spec.free_init else 1
        self.loop = LoopShift(spec.frames) if spec.loop else None
        scale = spec.pose.scale if spec.pose else None
        self.scale = scale if isinstance(scale, dict) else None
        self.control_scale = weight_at(self.scale, 0, spec.steps) if self.scale else 1.0
        self.hook = None
        controlnet = getattr(pipe, "controlnet", None)
        if controlnet is not None and (self.scale is not None or self.loop is not None):
            self.hook = controlnet.register_forward_pre_hook(self._controlnet_inputs, with_kwargs=True)

    def _controlnet_inputs(self, module, args, kwargs):
        if self.scale is not None:
            kwargs["conditioning_scale"] = kwargs["conditioning_scale"] * self.control_scale
        if self.loop is not None:  # pose frames follow the rolled latents
            kwargs["controlnet_cond"] = self.loop.roll_frames(kwargs["controlnet_cond"], 0, current=True)
        return args, kwargs

    def __call__(self, pipe, i, t, kw):
        n = pipe.num_timesteps  # this FreeInit iteration's steps
        following = i + 1 if i + 1 < n else 0  # the next step, or the first of the next iteration
        ends_iteration = i + 1 >= n
        if ends_iteration:
            self.iteration += 1
        schedule = self.renderer._schedule if not ends_iteration or self.iteration < self.iterations else None
        if schedule is not None:
            mixer, names, weights = schedule
            mixer.set_weights(names, [weight_at(w, following, n) for w in weights])
        if self.scale is not None:
            self.control_scale = weight_at(self.scale, following, n)
        if self.loop is not None:
            shift = self.loop.shift_for(i + 1, n)
            if shift:
                self.loop.roll_scheduler(pipe.scheduler, shift, tuple(kw["latents"].shape))
                kw["latents"] = self.loop.roll_latents(kw["latents"], shift)
                if "prompt_embeds" in kw:
                    kw["prompt_embeds"] = self.loop.roll_frames(kw["prompt_embeds"], shift)
        self.done += 1
        if self.renderer.on_step:  # some schedulers (PNDM) take one extra step: keep the bar within its total
            self.renderer.on_step(self.spec, min(self.done, self.total), self.total)
        if self.renderer.watch:
            self.renderer.watch(self.spec, min(self.done, self.total), self.total, kw["latents"])
        return kw

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
