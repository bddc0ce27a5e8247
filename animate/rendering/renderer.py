"""Renderer: builds the AnimateDiff pipeline once per model stack, loads each adapter once, and renders
one ClipSpec into uint8 frames (F×H×W×3)."""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np

from animate.errors import ConfigError, ModelError, NumericFaultError, OutOfMemory, RenderError
from animate.rendering.memory import MemoryLadder, free_memory, is_out_of_memory, release_heap, set_split, split_paused
from animate.rendering.memory import split_sizes as unet_split_sizes
from animate.models.sources import check_reachable, hub_commit
from animate.models.weights import read_safetensors_keys
from animate.rendering.numeric import latents_fault
from animate.models.schedulers import build_scheduler
from animate.spec import ClipSpec
from animate.spec.clipspec import labeled_sources
from animate.rendering.loading import check_before_load, safetensors_only, short_reason
from animate.models.family import has_free_noise, pipeline_class, render_family
from animate.rendering.loading import load_full_unet, restore_added_embedding
from animate.rendering import video_input
from animate.rendering.fastpaths import (cache_text_embeddings, compile_unet, quick_dtype_and_device, set_cpu_threads,
                                         set_eager, strip_motion_adapter)
from animate.rendering.keyframes import keyframe_rng
from animate.rendering.video_input import after_call
from motion.adapters import load_motion_adapter
from motion.context import context_plan, loop_closure, repeat_context_latents, split_sizes
from motion.errors import MotionError
from motion.freenoise import install_one_window_path
from motion.loras import LoraMixer, is_scheduled, load_lora, weight_at
from motion.unet_windows import can_defer, compact_prompts, set_unet_windows
from animate.rendering.variants import active
from animate.rendering.device import float32, decode_dtype, dtype_name, pick_device, pick_dtype, safer_dtype
from animate.rendering.steps import Steps, denoising_steps  # noqa: F401  (denoising_steps: the planner's import)
from animate.rendering.decode import decode_latents
from animate.rendering.stack import ClipResult, Stack  # noqa: F401  (ClipResult: the API's import)


class Renderer:
    """Renders ClipSpecs, reusing pipelines and adapters across clips.

    `on_step(spec, step, total)` is called after each denoising step (progress bars, --json events);
    `watch(spec, step, total, latents)` too (the server's latent previews; raising errors.Cancelled there stops the
    clip between steps).
    """

    def __init__(self, device: str | None = None, dtype: str | None = None, *, on_step: Callable | None = None,
                 max_stacks: int = 1, quiet_loading: bool = False, compile: bool | str = False,
                 embed_cache: bool = True):
        set_cpu_threads()
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.on_step = on_step
        self.watch: Callable | None = None
        self.stacks: dict[tuple, Stack] = {}
        self.max_stacks = max_stacks  # pipelines kept loaded; the oldest is freed to make room (GPU memory)
        self.quiet_loading = quiet_loading  # hide the libraries' own load bars (script runs draw their own)
        self.load_counts: dict[str, int] = {}
        self._schedule = None  # (mixer, names, weights) while a clip with weight ramps renders
        self._commits: dict[tuple, str | None] = {}  # hub Source.key() → the cached commit it loaded from
        # Memory savers taken after out-of-memory errors, kept for the run; fused LoRAs come out before an offload.
        self.ladder = MemoryLadder(self.device, before_offload=self._unfuse_loras)
        self._context = None  # the ContextPlan of the clip being prepared
        self.compile = compile  # torch.compile each stack's UNet (True: inductor, or a backend name)
        self.embed_cache = embed_cache  # same prompts + text encoder state → encoded once (animate/fastpaths.py)
        self.compiled: dict = {}  # what compile_unet did, for the sidecar

    # ------------------------------------------------------------------ loading
    def count_load(self, what: str) -> None:
        """One more load of `what` (a stack's models, or a ControlNet a conditioning variant loads): tests and the
        sidecar read `load_counts` to prove models load once."""
        self.load_counts[what] = self.load_counts.get(what, 0) + 1

    @staticmethod
    def _stack_key(spec: ClipSpec) -> tuple:
        return spec.model.key(), spec.motion_adapter.key(), spec.unet.key() if spec.unet else None

    def stack_for(self, spec: ClipSpec) -> Stack:
        key = self._stack_key(spec)
        stack = self.stacks.get(key)
        if stack is None:
            while self.stacks and len(self.stacks) >= self.max_stacks:
                del self.stacks[next(iter(self.stacks))]
                free_memory(self.device)
            stack = self._build_stack(spec)
            self.stacks[key] = stack
        return stack

    def _build_stack(self, spec: ClipSpec) -> Stack:
        if self.quiet_loading:
            import diffusers  # torch stack: kept out of light commands
            import transformers  # torch stack: kept out of light commands

            for lib in (diffusers, transformers):
                lib.utils.logging.disable_progress_bar()
                lib.utils.logging.set_verbosity_error()
        check_reachable(spec.model, "model")
        check_reachable(spec.motion_adapter, "motion_adapter")
        check_before_load(spec.model, "model")
        check_before_load(spec.motion_adapter, "motion_adapter")
        if spec.unet is not None:
            check_reachable(spec.unet, "unet")
            check_before_load(spec.unet, "unet")
        ma = spec.motion_adapter
        local = ma.local_file()
        keys = read_safetensors_keys(local) if local and local.suffix == ".safetensors" else None
        try:
            adapter = load_motion_adapter(ma.ref, kind=ma.kind, keys=keys, config=ma.config,
                                          weight_name=ma.weight_name, revision=ma.revision, dtype=self.dtype,
                                          use_safetensors=safetensors_only(ma))
        except MotionError as exc:
            raise ModelError(str(exc), where="motion_adapter") from None
        except (OSError, ValueError) as exc:
            single = ma.kind == "file" or bool(ma.weight_name)
            hint = ("an original-format file needs its config: {source: FILE, config: FOLDER-WITH-config.json}"
                    if single and not ma.config else None)
            raise ModelError(f"cannot load motion adapter {ma.describe()}: {short_reason(exc)}", where="motion_adapter",
                             hint=hint) from None
        self.count_load("motion_adapter")
        src = spec.model
        AnimateDiffPipeline = pipeline_class(render_family(src))  # noqa: N806  the family's pipeline class
        try:
            if src.kind == "file":
                kwargs = {"config": src.config} if src.config else {}
                pipe = AnimateDiffPipeline.from_single_file(src.ref, motion_adapter=adapter, torch_dtype=self.dtype,
                                                            **kwargs)
            else:
                pipe = AnimateDiffPipeline.from_pretrained(src.ref, motion_adapter=adapter, torch_dtype=self.dtype,
                                                           revision=src.revision, use_safetensors=safetensors_only(src))
        except (OSError, ValueError, RuntimeError) as exc:
            if "motion adapter" in str(exc).lower() or "size mismatch" in str(exc):
                raise ModelError(f"motion adapter {ma.describe()} does not fit base model {src.describe()}: "
                                 f"{short_reason(exc)}", where="motion_adapter",
                                 hint="use a motion adapter made for this base model's family (SD1.5 or SDXL)") \
                    from None
            raise ModelError(f"cannot load base model {src.describe()}: {short_reason(exc)}", where="model") from None
        self.count_load("model")
        restore_added_embedding(pipe.unet, src)  # diffusers drops it converting the UNet (animate.models.family)
        if spec.unet is not None:
            load_full_unet(pipe.unet, spec.unet)
            self.count_load("unet")
        unet_cross = pipe.unet.config.cross_attention_dim
        ma_channels = tuple(adapter.config.block_out_channels)
        if tuple(pipe.unet.config.block_out_channels) != ma_channels:
            raise ModelError(f"motion adapter {ma.describe()} is built for UNet channels {list(ma_channels)} but the "
                             f"base model has {list(pipe.unet.config.block_out_channels)} (cross-attention "
                             f"{unet_cross})", where="motion_adapter", hint="use a motion adapter for this base model")
        pipe.set_progress_bar_config(disable=True)
        # Its weights were copied into the UNet: kept, pipe.to() would move ~0.9 GB (fp16) of them for nothing.
        strip_motion_adapter(pipe)
        pipe.to(self.device)
        # Convert the motion blocks to FreeNoise blocks now, before any LoRA wraps their layers: diffusers
        # converts by copying state dicts, which fails (and would drop the LoRA) once PEFT layers exist.
        if has_free_noise(pipe):
            pipe.enable_free_noise(context_length=16, context_stride=4)
            install_one_window_path(pipe.unet)

        quick_dtype_and_device(pipe.unet)
        vae_dtype = decode_dtype(render_family(src), pipe.vae, self.dtype)
        pipe.vae.to(dtype=vae_dtype)
        base_config = dict(pipe.scheduler.config)
        if self.compile:
            self.compiled = compile_unet(pipe, self.device, self.compile)
        return Stack(pipe=pipe, base_scheduler_config=base_config, mixer=LoraMixer(pipe), decode_dtype=vae_dtype)

    def _unfuse_loras(self) -> None:
        """Take fused LoRA weights out of every stack (before an offload rung; later clips run them unfused)."""
        for stack in self.stacks.values():
            if stack.mixer is not None:
                stack.mixer.unfuse()

    def _load_adapters(self, stack: Stack, spec: ClipSpec) -> tuple[list[str], list[float]]:
        names, weights = [], []
        for i, adapter in enumerate(spec.adapters):
            name, src, weight = adapter.name, adapter.source, adapter.weight
            field_name = f"adapters[{i}] ({name})"
            internal = stack.adapters.get(src.key())
            if internal is None:
                check_reachable(src, field_name)
                check_before_load(src, field_name)
                stack.mixer.unfuse()  # PEFT would unmerge on its own and leave our fused record stale
                internal = _unique_name(name, set(stack.adapters.values()))
                try:
                    load_lora(stack.pipe, src.ref, kind=src.kind, adapter_name=internal,
                              weight_name=src.weight_name, revision=src.revision, allow_pickle=src.allow_pickle)
                except MotionError as exc:
                    raise ModelError(str(exc), where=field_name) from None
                except OSError as exc:
                    raise ModelError(f"cannot load {src.describe()}: {short_reason(exc)}", where=field_name) from None
                self.count_load(f"lora:{src.ref}:{src.weight_name}")
                stack.adapters[src.key()] = internal
            names.append(internal)
            weights.append(weight)
        return names, weights

    # ------------------------------------------------------------------ rendering
    def pipeline_call(self, spec: ClipSpec, pose_frames: list | None = None,
                      init_frames: list | None = None) -> tuple[Any, dict, Stack]:
        """Prepare the stack for `spec` and return (pipeline, call kwargs, stack), without running it. The clip's
        conditioning is read here unless given: `pose_frames`, and `init_frames` (video-to-video clips: the source
        frames at the clip's size)."""
        return self._pipeline_call(spec, self.conditioning_inputs(spec, pose=pose_frames, init_video=init_frames))

    @staticmethod
    def conditioning_inputs(spec: ClipSpec, **given) -> dict:
        """field → what each of the clip's conditioning variants reads before the call (pose images, the source
        video's frames), from `given` where a caller has it already."""
        return {c.field: given[c.field] if given.get(c.field) is not None else c.inputs(spec) for c in active(spec)}

    def _pipeline_call(self, spec: ClipSpec, inputs: dict) -> tuple[Any, dict, Stack]:
        stack = self.stack_for(spec)
        with split_paused(stack.pipe):  # LoRA loading and FreeNoise want the plain UNet blocks
            pipe, kwargs = self._prepare(stack, spec, inputs)
        set_split(pipe, split_sizes(spec.frames, self._context.blend))  # the ladder's split rung, if taken, stays
        self.ladder.before_clip(pipe)
        return pipe, kwargs, stack

    def _prepare(self, stack: Stack, spec: ClipSpec, inputs: dict) -> tuple[Any, dict]:
        names, weights = self._load_adapters(stack, spec)
        scheduled = any(is_scheduled(w) for w in weights)
        # A weight that changes between steps can't live fused into the UNet, nor any in an offloaded one (its
        # weights live in accelerate's hooks, where unfusing cannot reach them: the next change would fuse twice).
        stack.mixer.apply(names, [weight_at(w, 0, spec.steps) for w in weights],
                          fuse=spec.fuse and not scheduled and not self.ladder.offloaded)
        self._schedule = (stack.mixer, names, weights) if scheduled else None
        pipe = stack.pipe
        for conditioning in active(spec):  # each variant's pipeline from the stack's components, in order
            pipe = conditioning.pipeline(self, stack, spec, pipe)
        pipe.scheduler = build_scheduler(spec.scheduler, stack.base_scheduler_config)
        # SparseCtrl's pipeline has no FreeNoise: its clip is one window, set on the UNet it shares with the stack.
        self._context = self._enable_context(stack.pipe if spec.keyframes else pipe, spec)
        if self.compile:
            # What would recompile per clip, or unroll a window loop into the graph, runs eagerly.
            set_eager(stack.pipe.unet, "windowed clip" if len(self._context.windows) > 1 else
                      "unfused LoRA weights" if names and stack.mixer.fused is None else None)
        if spec.free_init:
            fi = spec.free_init
            pipe.enable_free_init(num_iters=fi.iters, use_fast_sampling=fi.fast, method=fi.method)
        else:
            pipe.disable_free_init()  # the stack's pipeline is shared by every clip
        kwargs: dict[str, Any] = dict(
            num_frames=spec.frames, height=spec.height, width=spec.width, num_inference_steps=spec.steps,
            guidance_scale=spec.guidance, output_type="latent", **self._noise_kwargs(pipe, spec),
        )
        kwargs.update(self._prompt_kwargs(spec))
        if self.embed_cache:
            cache_text_embeddings(pipe)
        for conditioning in active(spec):  # and its arguments of the call
            kwargs = conditioning.arguments(spec, inputs.get(conditioning.field), kwargs)
        if spec.loop:
            kwargs["callback_on_step_end_tensor_inputs"] = ["latents", "prompt_embeds"]
        return pipe, kwargs

    def _enable_context(self, pipe, spec: ClipSpec):
        """Set the clip's FreeNoise windows (re-enabling only updates window settings: the blocks were converted
        once). With one window over the whole clip FreeNoise equals the plain path (measured: < 1e-6) and still
        carries per-frame prompt conditioning."""
        from motion.travel import interpolation_callback  # loads torch: the planner imports this module

        max_len = int(getattr(pipe.unet.config, "motion_max_seq_length", 32) or 32)
        c = spec.context
        try:
            plan = context_plan(spec.frames, max_len, c.length, c.overlap, c.weighting, c.noise,
                                c.blend)
        except MotionError as exc:
            raise ConfigError(str(exc), where=f"{spec.script or 'clip'}: clip {spec.name}: context") from None
        # The stack's UNet is shared by every clip: each clip sets (or clears) its window-by-window blend.
        windowed = plan.blend == "unet" and len(plan.windows) > 1
        # A pose clip's ControlNet runs window by window inside the UNet's loop, on the window's prompt embeddings;
        # one that can't takes the clip's per-frame embeddings whole, so its clips keep diffusers' own.
        controlnet = getattr(pipe, "controlnet", None)
        set_unet_windows(pipe.unet, plan if windowed else None, controlnet=controlnet)
        compact_prompts(pipe, windowed and (controlnet is None or can_defer(controlnet)))
        if not has_free_noise(pipe):  # the SDXL pipeline: one window over the clip (check refuses more)
            return plan
        # With the UNet blend the motion modules see one window at a time, which FreeNoise runs as plain blocks;
        # FreeNoise still draws the clip's noise and the per-frame prompt embeddings (travel).
        pipe.enable_free_noise(context_length=plan.length, context_stride=plan.stride,
                               weighting_scheme=plan.weighting, noise_type=plan.noise,
                               prompt_interpolation_callback=interpolation_callback(spec.interpolation))
        return plan

    def _noise_kwargs(self, pipe, spec: ClipSpec) -> dict:
        """The seeded generator, and for repeat_context the one window of noise diffusers fails to draw itself."""
        import torch  # torch stack: kept out of light commands

        generator = torch.Generator("cpu").manual_seed(spec.seed)
        out: dict[str, Any] = {"generator": generator}
        plan = self._context
        if plan.noise == "repeat_context" and plan.length < spec.frames:
            scale = pipe.vae_scale_factor
            shape = (1, pipe.unet.config.in_channels, spec.frames, spec.height // scale, spec.width // scale)
            out["latents"] = repeat_context_latents(shape, plan.length, generator, torch.device(self.device),
                                                    pipe.unet.dtype)
        return out

    def _prompt_kwargs(self, spec: ClipSpec) -> dict:
        from motion.travel import normalize_keyframes  # loads torch: the planner imports this module

        prompt = (normalize_keyframes(spec.prompt, spec.frames, spec.head, spec.tail) if isinstance(spec.prompt, dict)
                  else _join(spec.head, spec.prompt, spec.tail))
        negative = (normalize_keyframes(spec.negative, spec.frames) if isinstance(spec.negative, dict)
                    else spec.negative or None)
        return {"prompt": prompt, "negative_prompt": negative}

    def render(self, spec: ClipSpec, pose_frames: list | None = None, keep_float: bool = False,
               init_frames: list | None = None) -> ClipResult:
        """One clip → frames. A numeric fault (NaN/inf, flat frames) is retried once with the denoiser in fp32;
        an out-of-memory error takes the next rung of the memory ladder. Either failing for good raises one line
        (NumericFaultError, OutOfMemory), and memory is handed back first so the next clip starts clean.
        Video-to-video clips start from `init_frames` (else their init_video source); a refine pass follows."""
        # 1. The clip's conditioning: pose images, the source video's frames (unless the caller has them).
        inputs = self.conditioning_inputs(spec, pose=pose_frames, init_video=init_frames)
        # 2. Stack, adapters, pipeline variant; denoise and decode, with the numeric retry and the memory ladder.
        result = self._render_pass(spec, inputs, keep_float)
        if spec.init_video is None and spec.refine is None:
            return result
        # 3. Video-to-video: the refine pass and the frame map.
        source = inputs.get("init_video")
        source = source if isinstance(source, video_input.SourceFrames) else None  # None: the caller's frames
        return video_input.finish(self, spec, result, source, inputs.get("pose"), keep_float)

    def _render_pass(self, spec: ClipSpec, inputs: dict, keep_float: bool) -> ClipResult:
        t0 = time.perf_counter()
        pipe, kwargs, stack = self._pipeline_call(spec, inputs)
        t_load = time.perf_counter() - t0

        retry: dict | None = None
        t_denoise = 0.0
        try:
            while True:
                t1 = time.perf_counter()
                latents, steps = self._denoise(spec, pipe, kwargs)
                t_denoise += time.perf_counter() - t1
                fault = latents_fault(latents)
                decoded = None
                release_heap()  # the denoising steps' freed buffers, before decoding holds the frames
                if fault is None:
                    decoded, fault = decode_latents(self, stack.pipe, latents, spec, keep_float)
                latents = None
                release_heap()
                if fault is None:
                    break
                decoded = None
                free_memory(self.device)
                safer = None if retry else safer_dtype(self.dtype)
                if safer is None:
                    raise NumericFaultError(self._fault_line(spec, fault, retry), hint="try another seed or "
                                            "scheduler, or fewer steps")
                retry = {"fault": fault, "dtype": dtype_name(self.dtype), "retried_in": dtype_name(safer)}
                self._cast_denoiser(pipe, safer, spec)
                kwargs.update(self._noise_kwargs(pipe, spec))  # same noise on retry
                self._restart_schedule(spec)
        finally:
            if retry:
                self._set_denoiser_dtype(pipe, self.dtype)  # later clips run as their render keys say
        frames, floats, decode_info = decoded
        t_decode = time.perf_counter() - t0 - t_load - t_denoise
        timings = {"load_s": round(t_load, 3), "denoise_s": round(t_denoise, 3), "decode_s": round(t_decode, 3)}
        info = {"device": self.device, "dtype": dtype_name(self.dtype), **decode_info, **self.ladder.record(),
                "context": self._context.record(), "loop_closure": loop_closure(frames)}
        if self.compiled:
            eager = stack.pipe.unet.__dict__.get("_animate_eager")
            info["compiled"] = {**self.compiled, "eager": eager} if eager else self.compiled
        split = unet_split_sizes(pipe.unet)
        if split:
            info["split_inference"] = split
        if spec.free_init:
            info["free_init"] = {**asdict(spec.free_init), "denoising_steps": steps.done}
        if retry:
            info["numeric_retry"] = retry
        for conditioning in active(spec):  # what each conditioning variant records in the sidecar
            info.update(conditioning.record(spec))
        commits = self._hub_commits(spec)
        if commits:
            info["hub_commits"] = commits
        return ClipResult(frames=frames, spec=spec, timings=timings, info=info, float_frames=floats)

    def _hub_commits(self, spec: ClipSpec) -> dict[str, str]:
        """field → the commit each hub source was loaded from (`revision:` pins it)."""
        sources = [(f"adapter:{name}" if name else field, src) for field, name, src in labeled_sources(spec)]
        out = {}
        for field_name, src in sources:
            if src.kind == "hub":
                if src.key() not in self._commits:
                    self._commits[src.key()] = hub_commit(src)
                if self._commits[src.key()]:
                    out[field_name] = self._commits[src.key()]
        return out

    def _fault_line(self, spec: ClipSpec, fault: str, retry: dict | None) -> str:
        head = f"clip {spec.name} seed {spec.seed}: {fault}"
        if retry:
            return (f"{head} after retrying the denoiser in {retry['retried_in']} (first try in {retry['dtype']}: "
                    f"{retry['fault']})")
        return f"{head} in {dtype_name(self.dtype)}; no precision retry: the denoiser already runs in fp32"

    def _cast_denoiser(self, pipe, dtype, spec: ClipSpec) -> None:
        """The denoiser to `dtype` for the numeric retry, going down the memory ladder when the wider copy does not
        fit (fp32 weights are twice fp16's): a cast that fails part way is undone, memory handed back, the next
        rung taken, and the cast tried again; OutOfMemory (one line) when no rung is left."""
        while True:
            try:
                self._set_denoiser_dtype(pipe, dtype)
                return
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
            self._set_denoiser_dtype(pipe, self.dtype)  # back to one dtype: a half-cast model holds both
            free_memory(self.device)
            if self.ladder.step(pipe) is None:
                raise OutOfMemory(f"out of memory casting the denoiser to {dtype_name(dtype)} to retry {spec.stem} "
                                  f"after a numeric fault, after trying {self.ladder.tried()}",
                                  hint="lower frames or size, or try another seed")

    def _set_denoiser_dtype(self, pipe, dtype) -> None:
        """The denoising models (UNet with its motion modules, text encoder, ControlNet) to `dtype`; the VAE
        keeps its decode dtype. Going fp16 → fp32 → fp16 gives back the same weights bit for bit."""
        for name in ("unet", "text_encoder", "text_encoder_2", "controlnet"):
            model = getattr(pipe, name, None)
            if model is not None:
                model.to(dtype=dtype)

    def _denoise(self, spec: ClipSpec, pipe, kwargs: dict):
        """(latents, the step callback that ran them) of one clip, going down the memory ladder on out-of-memory
        errors; each attempt gets a fresh callback (loop offset and pose scale back at step 0)."""
        import torch  # torch stack: kept out of light commands

        while True:
            steps = Steps(self, spec, pipe)
            try:
                with torch.inference_mode(), keyframe_rng(spec, self.device):
                    return pipe(**kwargs, callback_on_step_end=steps).frames, steps
            except (RuntimeError, ValueError, TypeError) as exc:  # a scheduler refusing its steps, MPS OOM...
                out_of_memory, why = is_out_of_memory(exc), short_reason(exc)
            finally:
                steps.close()
                if spec.init_video is not None:  # diffusers leaves the VAE in the UNet's dtype after encoding

                    after_call(pipe)
            # Outside the `except`: the live exception held the failed call's frames and their tensors.
            free_memory(self.device)
            if not out_of_memory:
                raise RenderError(f"clip {spec.stem} failed while denoising: {why}")
            if self.ladder.step(pipe) is None:
                raise OutOfMemory(f"out of memory while denoising {spec.stem} at {spec.width}x{spec.height}, "
                                  f"{spec.frames} frames, after trying {self.ladder.tried()}",
                                  hint="lower frames or size" + ("" if self.dtype != float32() else
                                                                 ", or use --dtype fp16"))
            kwargs.update(self._noise_kwargs(pipe, spec))  # same noise on retry
            self._restart_schedule(spec)

    def _restart_schedule(self, spec: ClipSpec) -> None:
        """Weight ramps back to step 0: the failed attempt's callback had moved them to the step it reached."""
        if self._schedule is not None:
            mixer, names, weights = self._schedule
            mixer.set_weights(names, [weight_at(w, 0, spec.steps) for w in weights])

    def decode(self, pipe, latents, spec: ClipSpec, keep_float: bool = False) -> tuple[np.ndarray, np.ndarray | None,
                                                                                      dict]:
        """Latents → (uint8 frames F×H×W×3, the [0,1] floats only when asked, info) with the fp32 VAE;
        NumericFaultError on NaN/inf or flat frames."""
        fault = latents_fault(latents)
        decoded, fault = (None, fault) if fault else decode_latents(self, pipe, latents, spec, keep_float)
        if fault:
            raise NumericFaultError(f"clip {spec.name} seed {spec.seed}: {fault}")
        return decoded

def _join(head: str, text: str, tail: str) -> str:
    return ", ".join(p for p in (head, text, tail) if p)


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


