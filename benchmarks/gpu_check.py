"""One-call GPU check: real-size random-weight SD1.5 + AnimateDiff modules (configs in benchmarks/configs/, no
download), rendered through animate's own Renderer at 512×512, 16 frames, 4 LCM steps, fp16, CFG 1 and 1.5.

    python -m benchmarks.gpu_check [--json PATH] [--budget SECONDS] [--device cuda]
    python -m benchmarks.gpu_check --smoke      # the same code with tiny shapes on the CPU (CI)

Every row runs in its own try/except (an error becomes a string in the JSON, the other rows still run) and
under one global time budget (rows that would not fit are recorded as skipped). Timings on CUDA are taken
with a device synchronize at every step end, so denoise / decode / encode are each their own work.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.timing import median, peak_rss_mb, reset_peak_rss  # noqa: E402

CONFIGS = Path(__file__).with_name("configs")
ROWS = ("environment", "build", "sdpa", "clip_cfg1", "clip_cfg1.5", "unet_flops", "fp16_vs_fp32", "nan_check",
        "vae_fp16", "decode_chunk_memory", "channels_last", "compile", "frames_24_windows", "frames_64_windows",
        "frames_256_memory", "gif_threads")
PROMPT = "a lighthouse on a cliff at dusk, waves crashing"

# Dense (no sparsity) fp16/bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; longest name first.
PEAK_FP16_TFLOPS = (("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4), ("H20", 148.0),
                    ("GH200", 989.4), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1),
                    ("L40", 181.0), ("L4", 121.0), ("A10G", 125.0), ("A10", 125.0), ("A6000", 154.8),
                    ("RTX 4090", 165.2), ("RTX 3090", 71.0), ("V100", 125.0), ("T4", 65.0))

# The full check and its CPU smoke twin: same rows, same code, smaller shapes.
SHAPES = {
    "full": dict(size=512, frames=16, windows=(24, 64), long=256, context=16, overlap=4, steps=4, reps=3,
                 chunks=(1, 4, 16)),
    "smoke": dict(size=64, frames=8, windows=(12, 20), long=32, context=8, overlap=4, steps=4, reps=1,
                  chunks=(1, 4, 8)),
}
SMOKE_CONFIGS = {  # the real configs with channels and depths cut down (same block types, same code paths)
    "unet": dict(block_out_channels=[32, 32, 64, 64], norm_num_groups=8, cross_attention_dim=32, sample_size=8),
    "vae": dict(block_out_channels=[8, 8, 16, 16], norm_num_groups=4, sample_size=64),
    "text": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 projection_dim=32),
    "motion": dict(block_out_channels=[32, 32, 64, 64], motion_norm_num_groups=8, motion_num_attention_heads=4),
}


# ------------------------------------------------------------------------------------------- plumbing
class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


class Check:
    """Runs rows under the budget and collects their results (or the error) into one dict."""

    def __init__(self, budget: Budget, skip=()):
        self.budget, self.rows, self.skip = budget, {}, set(skip)

    def row(self, name: str, need_s: float, fn, *args):
        if name in self.skip:
            self.rows[name] = {"skipped": "asked (--skip)"}
            print(f"{name}: skipped (--skip)", flush=True)
            return None
        left = self.budget.left()
        if left < need_s:
            self.rows[name] = {"skipped": f"time budget: {left:.0f} s left, the row needs about {need_s:.0f} s"}
            print(f"{name}: skipped ({left:.0f} s left)", flush=True)
            return None
        t = time.perf_counter()
        try:
            out = fn(*args)
            self.rows[name] = {**out, "row_s": round(time.perf_counter() - t, 2)}
        except Exception as exc:  # one row failing must not stop the check
            text = str(exc).strip().splitlines()
            self.rows[name] = {"error": f"{type(exc).__name__}: {text[0][:300] if text else ''}",
                               "where": traceback.format_exc().strip().splitlines()[-3].strip()[:300],
                               "row_s": round(time.perf_counter() - t, 2)}
            out = None
        print(f"{name}: {summary(self.rows[name])}", flush=True)
        return out


def summary(row: dict) -> str:
    """One line of a row: errors and skips as they are, nested results flattened (sample lists left out)."""
    if "error" in row or "skipped" in row:
        return row.get("error") or row["skipped"]
    parts = []
    for k, v in row.items():
        if isinstance(v, dict):
            parts += [f"{k}.{kk}={vv}" for kk, vv in v.items() if not isinstance(vv, (dict, list))]
        elif not isinstance(v, list):
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peaks(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()


def peaks(device: str) -> dict:
    import torch

    out = {"peak_rss_mb": round(peak_rss_mb())}
    if device.startswith("cuda"):
        out["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
        out["peak_vram_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2 ** 20)
    return out


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_FP16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


# ------------------------------------------------------------------------------------------- models
def load_configs(smoke: bool) -> dict:
    names = {"unet": "sd15_unet", "vae": "sd15_vae", "text": "clip_l_text", "motion": "motion_adapter_v1_5_2",
             "scheduler": "sd15_scheduler"}
    out = {}
    for key, name in names.items():
        cfg = {k: v for k, v in json.loads((CONFIGS / f"{name}.json").read_text()).items() if not k.startswith("_")}
        cfg.pop("architectures", None)
        cfg.pop("model_type", None)
        if smoke:
            cfg.update(SMOKE_CONFIGS.get(key, {}))
        out[key] = cfg
    return out


def build_models(dest: Path, cfg: dict, device: str) -> dict:
    """Random-weight modules from the configs, made on `device` (fast on a GPU), saved in fp16 as a diffusers
    base folder and a motion-adapter folder: the Renderer then loads them the way it loads real weights."""
    import torch
    from diffusers import AutoencoderKL, MotionAdapter, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from animate.models.tiny_parts import make_tokenizer

    tokenizer, _ = make_tokenizer()
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(cfg["unet"])
        vae = AutoencoderKL.from_config(cfg["vae"])
        text = CLIPTextModel(CLIPTextConfig(**cfg["text"], bos_token_id=tokenizer.bos_token_id,
                                            eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id))
        adapter = MotionAdapter.from_config(cfg["motion"])
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("unet", unet), ("vae", vae), ("text_encoder", text), ("motion_adapter", adapter))}
    for m in (unet, vae, text, adapter):
        m.to("cpu", dtype=torch.float16)  # written from the CPU, as fp16 checkpoints are
    StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                            scheduler=PNDMScheduler.from_config(cfg["scheduler"]), safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False,
                            ).save_pretrained(dest / "base", safe_serialization=True)
    adapter.save_pretrained(dest / "motion", safe_serialization=True)
    del unet, vae, text, adapter
    return {"params_m": {k: round(v / 1e6, 1) for k, v in params.items()}}


class Ctx:
    """What the rows share: shapes, the model folders, renderers by dtype, results of earlier rows."""

    def __init__(self, args, device: str):
        self.smoke, self.device = args.smoke, device
        self.shape = SHAPES["smoke" if args.smoke else "full"]
        self.tmp = tempfile.TemporaryDirectory(prefix="gpu-check-")
        self.dir = Path(self.tmp.name)
        self.renderers: dict = {}
        self.results: dict = {}
        self.half = "fp16"

    def spec(self, *, guidance: float = 1.0, frames: int | None = None, seed: int = 7, windows: bool = False,
             decode_chunk: int | None = None, name: str = "check"):
        from animate.spec import spec_from_fields

        s = self.shape
        fields = dict(model=str(self.dir / "base"), motion_adapter=str(self.dir / "motion"), scheduler="lcm",
                      steps=s["steps"], guidance=guidance, frames=frames or s["frames"], width=s["size"],
                      height=s["size"], seed=seed, prompt=PROMPT, negative="blurry")
        if windows:
            fields["context"] = {"length": s["context"], "overlap": s["overlap"]}
        if decode_chunk:
            fields["decode_chunk"] = decode_chunk
        return spec_from_fields(fields, name=name)[0]

    def renderer(self, dtype: str, compile=False):
        from animate.rendering.renderer import Renderer

        key = (dtype, compile)
        if key not in self.renderers:
            device = self.device
            self.renderers[key] = Renderer(device=device, dtype=dtype, quiet_loading=True, compile=compile,
                                           on_step=lambda spec, step, total: sync(device))
        return self.renderers[key]


# ------------------------------------------------------------------------------------------- rows
def row_environment(ctx: Ctx) -> dict:
    import diffusers
    import torch

    out = {"device": ctx.device, "torch": torch.__version__, "diffusers": diffusers.__version__,
           "python": platform.python_version(), "cpus": os.cpu_count(), "smoke": ctx.smoke,
           "shape": {k: v for k, v in ctx.shape.items()}}
    if ctx.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        free, total = torch.cuda.mem_get_info()
        out.update(gpu=name, vram_total_mb=round(total / 2 ** 20), cuda=torch.version.cuda,
                   peak_fp16_tflops=peak_tflops(name) or "unknown",
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, cudnn_tf32=torch.backends.cudnn.allow_tf32)
    else:
        out.update(gpu="none", peak_fp16_tflops="unknown")
    return out


def row_build(ctx: Ctx) -> dict:
    t = time.perf_counter()
    out = build_models(ctx.dir, load_configs(ctx.smoke), ctx.device)
    out["build_save_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    r = ctx.renderer(ctx.half)
    r.stack_for(ctx.spec())
    out["load_s"] = round(time.perf_counter() - t, 2)
    return out


def row_sdpa(ctx: Ctx) -> dict:
    pipe = ctx.renderer(ctx.half).stack_for(ctx.spec()).pipe
    kinds = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
    vae = sorted({type(p).__name__ for p in pipe.vae.attn_processors.values()})
    return {"unet_processors": kinds, "vae_processors": vae, "all_sdpa": kinds == vae == ["AttnProcessor2_0"]}


def render_timed(ctx: Ctx, r, spec, encode: bool = True) -> dict:
    from animate.encode import encode as encode_clip

    reset_peaks(ctx.device)
    t = time.perf_counter()
    res = r.render(spec)
    sync(ctx.device)
    render_s = time.perf_counter() - t
    out = {"load_s": res.timings["load_s"], "denoise_s": res.timings["denoise_s"],
           "decode_s": res.timings["decode_s"], "render_s": round(render_s, 3), **peaks(ctx.device)}
    if res.info.get("numeric_retry"):
        out["numeric_retry"] = res.info["numeric_retry"]
    if encode:
        t = time.perf_counter()
        encode_clip("gif", res.frames, ctx.dir / f"{spec.name}.gif", fps=8)
        out["encode_s"] = round(time.perf_counter() - t, 3)
    out["_frames"] = res.frames
    return out


def medians(samples: list[dict]) -> dict:
    keys = [k for k in samples[0] if not k.startswith("_") and isinstance(samples[0][k], (int, float))]
    return {k: round(median(s[k] for s in samples), 3) for k in keys}


def row_clip(ctx: Ctx, guidance: float) -> dict:
    r = ctx.renderer(ctx.half)
    spec = ctx.spec(guidance=guidance, name=f"cfg{guidance:g}")
    render_timed(ctx, r, spec)  # warm-up: first shapes, allocator, cudnn
    samples = [render_timed(ctx, r, spec) for _ in range(ctx.shape["reps"])]
    ctx.results[f"cfg{guidance:g}"] = samples
    out = {"median_s": medians(samples), "samples": [{k: v for k, v in s.items() if not k.startswith("_")}
                                                       for s in samples]}
    m = out["median_s"]
    out["clip_s"] = round(m["denoise_s"] + m["decode_s"] + m["encode_s"], 3)
    # encoders working in parallel (across clips) needed so encoding keeps up with the device
    out["encoders_to_keep_up"] = round(m["encode_s"] / max(1e-9, m["denoise_s"] + m["decode_s"]), 2)
    return out


def capture_unet_inputs(ctx: Ctx, r, spec):
    """(pipe, args, kwargs) of the UNet's first call in a one-step pipeline run of `spec`."""
    import torch

    pipe, kwargs, _ = r.pipeline_call(spec)
    seen = {}

    def pre(module, args, kw):
        if "call" not in seen:
            seen["call"] = (args, dict(kw))

    hook = pipe.unet.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.inference_mode():
            pipe(**{**kwargs, "num_inference_steps": 1})
    finally:
        hook.remove()
    return pipe, *seen["call"]


def time_unet(ctx: Ctx, unet, args, kw, reps: int = 5) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(2):
            unet(*args, **kw)
        times = []
        for _ in range(reps):
            sync(ctx.device)
            t = time.perf_counter()
            unet(*args, **kw)
            sync(ctx.device)
            times.append(time.perf_counter() - t)
    return median(times)


def row_unet_flops(ctx: Ctx) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    r = ctx.renderer(ctx.half)
    out = {}
    for guidance in (1.0, 1.5):
        pipe, args, kw = capture_unet_inputs(ctx, r, ctx.spec(guidance=guidance))
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            pipe.unet(*args, **kw)
        flops = counter.get_total_flops()
        unet_s = time_unet(ctx, pipe.unet, args, kw, reps=5 if not ctx.smoke else 2)
        key = f"cfg{guidance:g}"
        entry = {"flop_per_step": int(flops), "tflop_per_step": sig(flops / 1e12),
                 "tflop_per_frame_step": sig(flops / 1e12 / ctx.shape["frames"] / (2 if guidance > 1 else 1)),
                 "unet_step_s": sig(unet_s), "unet_tflops": sig(flops / unet_s / 1e12)}
        clips = ctx.results.get(key)
        if clips:
            denoise = median(s["denoise_s"] for s in clips)
            entry["clip_denoise_tflops"] = sig(flops * ctx.shape["steps"] / denoise / 1e12)
        peak = peak_tflops(torch.cuda.get_device_name()) if ctx.device.startswith("cuda") else None
        entry["of_peak"] = sig(entry["unet_tflops"] / peak, 3) if peak else "unknown"
        out[key] = entry
    return out


def frame_diff(a, b) -> dict:
    import numpy as np

    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((d.astype(np.float64) ** 2).mean())
    return {"max_levels": int(d.max()), "mean_levels": round(float(d.mean()), 3),
            "psnr_db": round(10 * np.log10(255 ** 2 / mse), 2) if mse > 0 else "inf"}


def row_fp16_vs_fp32(ctx: Ctx) -> dict:
    spec = ctx.spec(name="precision")
    half = render_timed(ctx, ctx.renderer(ctx.half), spec, encode=False)
    r32 = ctx.renderer("fp32")
    render_timed(ctx, r32, spec, encode=False)  # warm-up
    full = render_timed(ctx, r32, spec, encode=False)
    return {**frame_diff(half["_frames"], full["_frames"]),
            "fp32_over_fp16_denoise": round(full["denoise_s"] / max(1e-9, half["denoise_s"]), 2),
            "fp32_denoise_s": full["denoise_s"], "fp16_denoise_s": half["denoise_s"]}


def _latents(ctx: Ctx, r, spec):
    import torch

    pipe, kwargs, _ = r.pipeline_call(spec)
    with torch.inference_mode():
        return pipe, pipe(**kwargs).frames


def row_nan_check(ctx: Ctx) -> dict:
    import torch

    out = {}
    for guidance in (1.0, 1.5):
        pipe, latents = _latents(ctx, ctx.renderer(ctx.half), ctx.spec(guidance=guidance))
        out[f"cfg{guidance:g}_latents_finite"] = bool(torch.isfinite(latents).all())
        out[f"cfg{guidance:g}_latent_absmax"] = round(float(latents.abs().max()), 3)
        ctx.results["latents"] = (pipe, latents)
    retries = [s.get("numeric_retry") for key in ("cfg1", "cfg1.5") for s in ctx.results.get(key, [])]
    out["numeric_retries_in_clips"] = sum(1 for x in retries if x)
    return out


def _decode(vae, latents, dtype):
    import torch

    flat = (latents.to(torch.float32) / vae.config.scaling_factor)[0].permute(1, 0, 2, 3).to(dtype)
    with torch.inference_mode():
        image = vae.decode(flat).sample.float()
    return ((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def row_vae_fp16(ctx: Ctx) -> dict:
    """The VAE decoding in fp16 against the fp32 it runs in today: speed, agreement, NaN (random weights do not
    have the overflow real SD1.5 VAEs show in fp16: agreement here is the arithmetic's, not the weights')."""
    import numpy as np
    import torch

    if "latents" not in ctx.results:
        row_nan_check(ctx)
    pipe, latents = ctx.results["latents"]
    vae32 = pipe.vae
    vae16 = copy.deepcopy(vae32).to(dtype=torch.float16)
    times = {"fp32": [], "fp16": []}
    frames = {}
    for i in range(2 if ctx.smoke else 3):
        for name, vae, dtype in (("fp32", vae32, torch.float32), ("fp16", vae16, torch.float16))[::(-1) ** i]:
            sync(ctx.device)
            t = time.perf_counter()
            frames[name] = _decode(vae, latents, dtype)
            sync(ctx.device)
            times[name].append(time.perf_counter() - t)
    del vae16
    return {"fp32_s": round(median(times["fp32"]), 3), "fp16_s": round(median(times["fp16"]), 3),
            "speedup": round(median(times["fp32"]) / max(1e-9, median(times["fp16"])), 2),
            "fp16_has_nan_or_flat": bool(np.ptp(frames["fp16"]) == 0), **frame_diff(frames["fp16"], frames["fp32"])}


def row_decode_chunk_memory(ctx: Ctx) -> dict:
    from animate.rendering import fastpaths

    r = ctx.renderer(ctx.half)
    if "latents" not in ctx.results:
        row_nan_check(ctx)
    pipe, latents = ctx.results["latents"]
    out = {"estimate_mb_per_frame": sig(fastpaths.decode_bytes_per_frame(pipe.vae, ctx.shape["size"],
                                                                        ctx.shape["size"]) / 2 ** 20)}
    base = None
    for chunk in ctx.shape["chunks"]:
        spec = ctx.spec(decode_chunk=chunk)
        reset_peaks(ctx.device)
        t = time.perf_counter()
        frames, _, info = r.decode(pipe, latents, spec)
        sync(ctx.device)
        entry = {"s": round(time.perf_counter() - t, 3), "used_chunk": info["decode_chunk"], **peaks(ctx.device)}
        if base is None:
            base = frames
        entry["max_levels_vs_first"] = int(abs(frames.astype(int) - base.astype(int)).max())
        out[f"chunk{chunk}"] = entry
    return out


def row_channels_last(ctx: Ctx) -> dict:
    import torch

    pipe, args, kw = capture_unet_inputs(ctx, ctx.renderer(ctx.half), ctx.spec())
    plain = time_unet(ctx, pipe.unet, args, kw, reps=3)
    pipe.unet.to(memory_format=torch.channels_last)
    try:
        last = time_unet(ctx, pipe.unet, args, kw, reps=3)
    finally:
        pipe.unet.to(memory_format=torch.contiguous_format)
    return {"contiguous_step_s": round(plain, 4), "channels_last_step_s": round(last, 4),
            "speedup": round(plain / max(1e-9, last), 3)}


def row_compile(ctx: Ctx) -> dict:
    """--compile against eager in the same run, interleaved; CPU smoke uses dynamo's `eager` backend (the
    capture and guards, not inductor's kernels: compiling those takes minutes on two cores)."""
    backend = "eager" if ctx.smoke else True
    eager, compiled = ctx.renderer(ctx.half), ctx.renderer(ctx.half, compile=backend)
    spec = ctx.spec(name="compile")
    t = time.perf_counter()
    render_timed(ctx, compiled, spec, encode=False)  # compiles
    compile_s = time.perf_counter() - t
    e, c = [], []
    for i in range(max(2, ctx.shape["reps"])):
        for name in (("e", "c") if i % 2 == 0 else ("c", "e")):
            (e if name == "e" else c).append(render_timed(ctx, eager if name == "e" else compiled, spec,
                                                          encode=False))
    return {"backend": compiled.compiled.get("backend"), "first_clip_s": round(compile_s, 2),
            "eager_denoise_s": round(median(s["denoise_s"] for s in e), 3),
            "compiled_denoise_s": round(median(s["denoise_s"] for s in c), 3),
            "speedup": round(median(s["denoise_s"] for s in e) / max(1e-9, median(s["denoise_s"] for s in c)), 3),
            **{f"frames_{k}": v for k, v in frame_diff(c[-1]["_frames"], e[-1]["_frames"]).items()}}


def row_frames(ctx: Ctx, frames: int, encode: bool = True) -> dict:
    r = ctx.renderer(ctx.half)
    out = {k: v for k, v in render_timed(ctx, r, ctx.spec(frames=frames, windows=True, name=f"f{frames}"),
                                         encode=encode).items() if not k.startswith("_")}
    base = ctx.results.get("cfg1")
    if base:
        per = median(s["denoise_s"] for s in base) / ctx.shape["frames"]
        out["denoise_per_frame_vs_16"] = round(out["denoise_s"] / frames / max(1e-9, per), 2)
    return out


def row_gif_threads(ctx: Ctx) -> dict:
    from animate.encode import gif

    samples = ctx.results.get("cfg1")
    frames = samples[0]["_frames"] if samples else render_timed(ctx, ctx.renderer(ctx.half), ctx.spec())["_frames"]
    times, data = {"1": [], "auto": []}, {}
    old = os.environ.pop("ANIMATE_ENCODE_THREADS", None)
    threads = gif.encode_threads()
    try:
        for i in range(2):
            for name in (("1", "auto") if i == 0 else ("auto", "1")):
                if name == "1":
                    os.environ["ANIMATE_ENCODE_THREADS"] = "1"
                else:
                    os.environ.pop("ANIMATE_ENCODE_THREADS", None)
                path = ctx.dir / f"threads-{name}.gif"
                t = time.perf_counter()
                gif.encode_gif(frames, path, fps=8)
                times[name].append(time.perf_counter() - t)
                data[name] = path.read_bytes()
    finally:
        if old is None:
            os.environ.pop("ANIMATE_ENCODE_THREADS", None)
        else:
            os.environ["ANIMATE_ENCODE_THREADS"] = old
    return {"threads": threads, "one_thread_s": round(median(times["1"]), 3),
            "threads_s": round(median(times["auto"]), 3),
            "speedup": round(median(times["1"]) / max(1e-9, median(times["auto"])), 2),
            "same_bytes": data["1"] == data["auto"]}


# ------------------------------------------------------------------------------------------- main
def run(args) -> dict:
    import torch

    from animate.cli import quiet_libraries

    quiet_libraries()
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:
        torch.set_num_threads(1)
    budget = Budget(args.budget or (240 if args.smoke else 450))
    ctx = Ctx(args, device)
    check = Check(budget, skip=[x for x in (args.skip or "").split(",") if x])
    s = ctx.shape
    full = not args.smoke
    check.row("environment", 0, row_environment, ctx)
    if check.row("build", 0, row_build, ctx) is None:
        for name in ROWS[2:]:
            check.rows[name] = {"skipped": "the models could not be built"}
    else:
        check.row("sdpa", 0, row_sdpa, ctx)
        check.row("clip_cfg1", 20 if full else 1, row_clip, ctx, 1.0)
        check.row("clip_cfg1.5", 25 if full else 1, row_clip, ctx, 1.5)
        check.row("unet_flops", 15 if full else 1, row_unet_flops, ctx)
        check.row("fp16_vs_fp32", 25 if full else 1, row_fp16_vs_fp32, ctx)
        ctx.renderers.pop(("fp32", False), None)  # hand its memory back
        check.row("nan_check", 5 if full else 1, row_nan_check, ctx)
        check.row("vae_fp16", 10 if full else 1, row_vae_fp16, ctx)
        check.row("decode_chunk_memory", 10 if full else 1, row_decode_chunk_memory, ctx)
        check.row("channels_last", 10 if full else 1, row_channels_last, ctx)
        check.row("frames_24_windows", 15 if full else 1, row_frames, ctx, s["windows"][0])
        check.row("frames_64_windows", 30 if full else 1, row_frames, ctx, s["windows"][1], False)
        check.row("frames_256_memory", 60 if full else 1, row_frames, ctx, s["long"], False)
        check.row("gif_threads", 15 if full else 1, row_gif_threads, ctx)
        check.row("compile", 150 if full else 1, row_compile, ctx)
    ctx.renderers.clear()
    ctx.tmp.cleanup()
    return {"rows": check.rows, "total_s": round(time.perf_counter() - budget.start, 1),
            "budget_s": budget.seconds, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(result: dict) -> str:
    lines = ["| row | result |", "|---|---|"]
    for name in ROWS:
        row = result["rows"].get(name, {"error": "missing"})
        lines.append(f"| {name} | {summary(row)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: checks the harness, not a GPU")
    ap.add_argument("--device", help="default: cuda when present (cpu with --smoke)")
    ap.add_argument("--budget", type=float, help="global time budget in seconds (default 450, smoke 240)")
    ap.add_argument("--skip", metavar="ROW,ROW", help=f"rows not to run (recorded as skipped): {', '.join(ROWS[2:])}")
    ap.add_argument("--json", type=Path, help="where to write the JSON (default gpu_check[-smoke].json here)")
    args = ap.parse_args(argv)
    result = run(args)
    path = args.json or Path(f"gpu_check{'-smoke' if args.smoke else ''}.json")
    path.write_text(json.dumps(result, indent=2, default=str))
    print()
    print(table(result))
    print(f"\ntotal {result['total_s']} s (budget {result['budget_s']:.0f} s); JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
