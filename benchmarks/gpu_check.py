"""One-call GPU check: real-size random-weight SD1.5 + AnimateDiff modules (configs in benchmarks/configs/, no
download), rendered through animate's Renderer and through a plain diffusers AnimateDiffPipeline with the same
components, at 512×512, 16 frames, 4 and 8 LCM steps, fp16, CFG 1 and 1.5, with and without a random LoRA of
LCM-LoRA's rank and shape fused; each CUDA fast path against its absence; 24/64 windowed frames and a 256-frame
memory line; `--compile` last, under its own budget.

    python -m benchmarks.gpu_check OUT_DIR [--budget S] [--compile-budget S] [--skip ROW,ROW]
    python -m benchmarks.gpu_check OUT_DIR --smoke     # the same code with tiny shapes on the CPU (CI)

Without CUDA it stops at once (exit 2) unless --smoke. OUT_DIR/gpu_check.json (gpu_check-smoke.json) is
rewritten after every row, so a run cut off at its time limit keeps what it measured; the table is printed and
written beside it (.md). Every row runs in its own try (an error becomes a string, the other rows still run)
and under the budget (rows that would not fit are recorded as skipped). Before each row garbage is collected,
the CUDA cache emptied and every other row's models let go; memory is reported as the weights alive when the
clip starts, the peak, and the peak minus the weights. Timings on CUDA synchronize at every step end.
The lent machine and how to run this there: benchmarks/device/README.md.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
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
ROWS = ("environment", "build", "sdpa", "clip_4step_cfg1", "clip_4step_cfg1.5", "clip_8step_cfg1", "clip_8step_cfg1.5",
        "lora_fused", "plain_diffusers", "decode_paths", "motion_adapter", "forward_chunking", "frames_24_windows",
        "frames_64_windows", "frames_256_memory", "decode_chunk_memory", "fp16_vs_fp32", "nan_check", "unet_flops",
        "channels_last", "gif_threads", "compile")
PROMPT = "a lighthouse on a cliff at dusk, waves crashing"
NEGATIVE = "blurry"
FORMATS = ("gif", "mp4")  # what "end to end" encodes
HALF = (("fp16", False),)  # the key of the fp16 eager renderer most rows share

# Dense (no sparsity) fp16/bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; longest name first.
PEAK_FP16_TFLOPS = (("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4), ("H20", 148.0),
                    ("GH200", 989.4), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1),
                    ("L40", 181.0), ("L4", 121.0), ("A10G", 125.0), ("A10", 125.0), ("A6000", 154.8),
                    ("RTX 4090", 165.2), ("RTX 3090", 71.0), ("V100", 125.0), ("T4", 65.0))

# The full check and its CPU smoke twin: same rows, same code, smaller shapes.
SHAPES = {
    "full": dict(size=512, frames=16, windows=(24, 64), long=256, context=16, overlap=4, reps=3, chunks=(1, 4, 16),
                 lora_rank=64),
    "smoke": dict(size=32, frames=4, windows=(6, 10), long=16, context=4, overlap=2, reps=1, chunks=(1, 2, 4),
                  lora_rank=4),
}
SMOKE_CONFIGS = {  # the real configs with channels and depths cut down (same block types, same code paths)
    "unet": dict(block_out_channels=[16, 16, 32, 32], norm_num_groups=8, cross_attention_dim=16, sample_size=4,
                 attention_head_dim=4),
    "vae": dict(block_out_channels=[8, 8, 16, 16], norm_num_groups=4, sample_size=32),
    "text": dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                 projection_dim=16),
    "motion": dict(block_out_channels=[16, 16, 32, 32], motion_norm_num_groups=8, motion_num_attention_heads=2),
}
# LCM-LoRA SD1.5's layers: attention, feed-forward, projections and resnets of the spatial UNet, at rank 64.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "conv2", "time_emb_proj", "conv_shortcut")


# ------------------------------------------------------------------------------------------- plumbing
class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


class Check:
    """Runs rows under a budget, collects their results (or the error), and rewrites the JSON after each."""

    def __init__(self, budget: Budget, ctx, skip=(), save=None):
        self.budget, self.ctx, self.rows, self.skip, self.save = budget, ctx, {}, set(skip), save or (lambda: None)

    def row(self, name: str, need_s: float, fn, *args, keep=(), budget: Budget | None = None):
        """Run `fn(*args)` as row `name` if about `need_s` seconds are left; renderers not named in `keep` are let
        go first."""
        budget = budget or self.budget
        if name in self.skip:
            self.rows[name] = {"skipped": "asked (--skip)"}
        elif budget.left() < need_s:
            self.rows[name] = {"skipped": f"time budget: {budget.left():.0f} s left, the row needs about "
                                          f"{need_s:.0f} s"}
        else:
            self.ctx.before_row(keep)
            t = time.perf_counter()
            try:
                out = fn(*args)
                self.rows[name] = {**out, "row_s": round(time.perf_counter() - t, 2)}
            except Exception as exc:  # one row failing must not stop the check
                text = str(exc).strip().splitlines()
                self.rows[name] = {"error": f"{type(exc).__name__}: {text[0][:300] if text else ''}",
                                   "where": traceback.format_exc().strip().splitlines()[-3].strip()[:300],
                                   "row_s": round(time.perf_counter() - t, 2)}
        print(f"{name}: {summary(self.rows[name])}", flush=True)
        self.save()
        return self.rows[name] if "error" not in self.rows[name] and "skipped" not in self.rows[name] else None


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


def mb(n: float) -> float:
    return round(n / 2 ** 20, 1)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def clean(device: str) -> None:
    """Garbage collected, the CUDA cache emptied and the peak counters reset: each figure is its own."""
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()


def live_bytes(device: str) -> int:
    import torch

    return torch.cuda.memory_allocated() if device.startswith("cuda") else 0


def memory(device: str, weights: int) -> dict:
    """Weights alive when the work started, the peak, and the peak minus the weights (what the work added)."""
    import torch

    out = {"peak_rss_mb": round(peak_rss_mb())}
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
        out.update(weights_mb=mb(weights), peak_mb=mb(peak), peak_over_weights_mb=mb(peak - weights),
                   peak_reserved_mb=mb(torch.cuda.max_memory_reserved()))
    return out


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_FP16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def frame_diff(a, b) -> dict:
    import numpy as np

    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((d.astype(np.float64) ** 2).mean())
    return {"max_levels": int(d.max()), "mean_levels": round(float(d.mean()), 3),
            "psnr_db": round(10 * np.log10(255 ** 2 / mse), 2) if mse > 0 else "inf"}


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


def build_models(dest: Path, cfg: dict, device: str, rank: int) -> dict:
    """Random-weight modules from the configs, made on `device` (fast on a GPU), saved in fp16 as a diffusers
    base folder, a motion-adapter folder and a LoRA file of LCM-LoRA's layers at `rank` (small values: a random
    LoRA at full scale would blow the activations up): the Renderer loads them the way it loads real weights."""
    import torch
    from diffusers import AutoencoderKL, MotionAdapter, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
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
    lora = {}
    for name, module in unet.named_modules():
        if name.endswith(LORA_TARGETS) and isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            w = module.weight
            a_shape = (rank, *w.shape[1:]) if w.dim() == 4 else (rank, w.shape[1])
            b_shape = (w.shape[0], rank, 1, 1) if w.dim() == 4 else (w.shape[0], rank)
            lora[f"unet.{name}.lora_A.weight"] = torch.randn(a_shape, device=device) * 0.02
            lora[f"unet.{name}.lora_B.weight"] = torch.randn(b_shape, device=device) * 0.002
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("unet", unet), ("vae", vae), ("text_encoder", text), ("motion_adapter", adapter))}
    params["lora"] = sum(t.numel() for t in lora.values())
    for m in (unet, vae, text, adapter):
        m.to("cpu", dtype=torch.float16)  # written from the CPU, as fp16 checkpoints are
    StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                            scheduler=PNDMScheduler.from_config(cfg["scheduler"]), safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False,
                            ).save_pretrained(dest / "base", safe_serialization=True)
    adapter.save_pretrained(dest / "motion", safe_serialization=True)
    (dest / "lora").mkdir()
    save_file({k: v.to("cpu", torch.float16).contiguous() for k, v in lora.items()},
              str(dest / "lora" / "pytorch_lora_weights.safetensors"))
    del unet, vae, text, adapter, lora
    return {"params_m": {k: round(v / 1e6, 1) for k, v in params.items()}, "lora_rank": rank}


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

    def before_row(self, keep=()) -> None:
        """Only the renderers in `keep` stay: a row's memory figures count its own models alone."""
        for key in [k for k in self.renderers if k not in keep]:
            del self.renderers[key]
        clean(self.device)

    def spec(self, *, guidance: float = 1.0, steps: int = 4, frames: int | None = None, seed: int = 7,
             windows: bool = False, decode_chunk: int | None = None, lora: float | None = None, name: str = "check"):
        from animate.spec import spec_from_fields

        s = self.shape
        fields = dict(model=str(self.dir / "base"), motion_adapter=str(self.dir / "motion"), scheduler="lcm",
                      steps=steps, guidance=guidance, frames=frames or s["frames"], width=s["size"],
                      height=s["size"], seed=seed, prompt=PROMPT, negative=NEGATIVE)
        if windows:
            fields["context"] = {"length": s["context"], "overlap": s["overlap"]}
        if decode_chunk:
            fields["decode_chunk"] = decode_chunk
        if lora is not None:
            fields["adapters"] = [{"name": "lcm", "source": str(self.dir / "lora"), "weight": lora, "kind": "lcm"}]
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
        out.update(gpu=name, vram_total_mb=mb(total), cuda=torch.version.cuda,
                   peak_fp16_tflops=peak_tflops(name) or "unknown",
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, cudnn_tf32=torch.backends.cudnn.allow_tf32)
    else:
        out.update(gpu="none", peak_fp16_tflops="unknown")
    return out


def row_build(ctx: Ctx) -> dict:
    t = time.perf_counter()
    out = build_models(ctx.dir, load_configs(ctx.smoke), ctx.device, ctx.shape["lora_rank"])
    out["build_save_s"] = round(time.perf_counter() - t, 2)
    return out


def row_sdpa(ctx: Ctx) -> dict:
    pipe = ctx.renderer(ctx.half).stack_for(ctx.spec()).pipe
    kinds = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
    vae = sorted({type(p).__name__ for p in pipe.vae.attn_processors.values()})
    return {"unet_processors": kinds, "vae_processors": vae, "all_sdpa": kinds == vae == ["AttnProcessor2_0"]}


def encode_all(ctx: Ctx, frames, stem: str) -> float:
    """GIF and MP4 of `frames`, seconds."""
    from animate.encode import encode as encode_clip

    t = time.perf_counter()
    for fmt in FORMATS:
        encode_clip(fmt, frames, ctx.dir / f"{stem}.{fmt}", fps=8)
    return round(time.perf_counter() - t, 3)


def render_timed(ctx: Ctx, r, spec, encode: bool = True) -> dict:
    clean(ctx.device)
    weights = live_bytes(ctx.device)
    t = time.perf_counter()
    res = r.render(spec)
    sync(ctx.device)
    out = {"load_s": res.timings["load_s"], "denoise_s": res.timings["denoise_s"],
           "decode_s": res.timings["decode_s"], "render_s": round(time.perf_counter() - t, 3),
           **memory(ctx.device, weights)}
    for key in ("numeric_retry", "decode_retry", "memory_fallbacks"):
        if res.info.get(key):
            out[key] = res.info[key]
    if encode:
        out["encode_s"] = encode_all(ctx, res.frames, spec.name)
    out["_frames"] = res.frames
    return out


def medians(samples: list[dict]) -> dict:
    keys = [k for k in samples[0] if not k.startswith("_") and isinstance(samples[0][k], (int, float))]
    return {k: round(median(s[k] for s in samples), 3) for k in keys}


def clip_row(ctx: Ctx, r, spec, key: str) -> dict:
    if not ctx.smoke:
        render_timed(ctx, r, spec)  # warm-up: first shapes, allocator, cudnn
    samples = [render_timed(ctx, r, spec) for _ in range(ctx.shape["reps"])]
    ctx.results[key] = samples
    out = {"median_s": medians(samples)}
    m = out["median_s"]
    out["clip_s"] = round(m["denoise_s"] + m["decode_s"], 3)
    out["clip_and_encode_s"] = round(out["clip_s"] + m["encode_s"], 3)
    # encoders working in parallel (across clips) needed so encoding keeps up with the device
    out["encoders_to_keep_up"] = round(m["encode_s"] / max(1e-9, out["clip_s"]), 2)
    extra = {k: samples[-1][k] for k in ("numeric_retry", "decode_retry", "memory_fallbacks") if k in samples[-1]}
    return {**out, **extra}


def row_clip(ctx: Ctx, steps: int, guidance: float) -> dict:
    spec = ctx.spec(guidance=guidance, steps=steps, name=f"s{steps}cfg{guidance:g}")
    return clip_row(ctx, ctx.renderer(ctx.half), spec, f"{steps}step_cfg{guidance:g}")


def row_lora(ctx: Ctx) -> dict:
    """The LCM-LoRA-shaped LoRA fused (the default), 4 steps CFG 1; then a weight change (unfuse + refuse)."""
    r = ctx.renderer(ctx.half)
    out = clip_row(ctx, r, ctx.spec(lora=1.0, name="lora"), "lora")
    t = time.perf_counter()
    res = r.render(ctx.spec(lora=0.8, name="lora08"))
    sync(ctx.device)
    out["weight_change_clip_s"] = round(time.perf_counter() - t, 3)
    out["weight_change_extra_s"] = round(out["weight_change_clip_s"] - res.timings["denoise_s"]
                                         - res.timings["decode_s"], 3)
    base = ctx.results.get("4step_cfg1")
    if base:
        out["denoise_vs_no_lora"] = round(out["median_s"]["denoise_s"] / median(s["denoise_s"] for s in base), 3)
    return out


def plain_pipe(ctx: Ctx, dtype):
    """diffusers' own AnimateDiffPipeline from the same folders, the same LCM scheduler, on the device."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    from animate.models.schedulers import build_scheduler

    adapter = MotionAdapter.from_pretrained(ctx.dir / "motion", torch_dtype=dtype)
    pipe = AnimateDiffPipeline.from_pretrained(ctx.dir / "base", motion_adapter=adapter, torch_dtype=dtype)
    pipe.scheduler = build_scheduler("lcm", dict(pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(ctx.device)


def plain_render(ctx: Ctx, pipe, spec):
    import torch

    from animate.rendering.decode import to_uint8

    clean(ctx.device)
    weights = live_bytes(ctx.device)
    t = time.perf_counter()
    with torch.inference_mode():
        video = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, num_frames=spec.frames, height=spec.height,
                     width=spec.width, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                     generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np").frames[0]
    sync(ctx.device)
    out = {"render_s": round(time.perf_counter() - t, 3), **memory(ctx.device, weights)}
    out["_frames"] = to_uint8(video)
    return out


def row_plain(ctx: Ctx) -> dict:
    """animate against a plain diffusers AnimateDiffPipeline with the same components and steps, each alone on the
    device, end to end: stack build (load + to device), the clip (denoise + decode), GIF + MP4."""
    import torch

    from animate.rendering.renderer import Renderer

    out = {}
    for guidance in (1.0,) if ctx.smoke else (1.0, 1.5):
        spec = ctx.spec(guidance=guidance, name=f"plain{guidance:g}")
        key = f"cfg{guidance:g}"
        clean(ctx.device)
        t = time.perf_counter()
        pipe = plain_pipe(ctx, torch.float16)
        sync(ctx.device)
        build = time.perf_counter() - t
        first = plain_render(ctx, pipe, spec)["render_s"]
        plain = [plain_render(ctx, pipe, spec) for _ in range(ctx.shape["reps"])]
        plain_encode = encode_all(ctx, plain[-1]["_frames"], f"plain-{key}")
        plain_frames = plain[-1]["_frames"]
        del pipe
        clean(ctx.device)
        t = time.perf_counter()
        r = Renderer(device=ctx.device, dtype=ctx.half, quiet_loading=True,
                     on_step=lambda spec, step, total: sync(ctx.device))
        r.stack_for(spec)
        sync(ctx.device)
        a_build = time.perf_counter() - t
        a_first = render_timed(ctx, r, spec, encode=False)["render_s"]
        ours = [render_timed(ctx, r, spec, encode=False) for _ in range(ctx.shape["reps"])]
        a_encode = encode_all(ctx, ours[-1]["_frames"], f"animate-{key}")
        del r
        p_clip, a_clip = median(s["render_s"] for s in plain), median(s["render_s"] for s in ours)
        p_e2e, a_e2e = build + p_clip + plain_encode, a_build + a_clip + a_encode
        out[key] = {"plain_build_s": round(build, 2), "plain_first_clip_s": first, "plain_clip_s": round(p_clip, 3),
                    "plain_encode_s": plain_encode, "plain_e2e_s": round(p_e2e, 3),
                    "animate_build_s": round(a_build, 2), "animate_first_clip_s": a_first,
                    "animate_clip_s": round(a_clip, 3), "animate_encode_s": a_encode,
                    "animate_e2e_s": round(a_e2e, 3),
                    "clip_ratio": round(a_clip / max(1e-9, p_clip), 3), "e2e_ratio": round(a_e2e / max(1e-9, p_e2e), 3),
                    **{f"plain_{k}": v for k, v in plain[-1].items() if k.endswith("_mb")},
                    **{f"animate_{k}": v for k, v in ours[-1].items() if k.endswith("_mb")},
                    **{f"frames_{k}": v for k, v in frame_diff(ours[-1]["_frames"], plain_frames).items()}}
    return out


def _latents(ctx: Ctx, r, spec):
    import torch

    pipe, kwargs, stack = r.pipeline_call(spec)
    with torch.inference_mode():
        return stack.pipe, pipe(**kwargs).frames


def host_decode(vae, latents, dtype, chunk: int):
    """The decode as it was: the VAE in `dtype`, each chunk's floats to the host, diffusers' postprocessing and
    to_uint8 there."""
    import numpy as np
    import torch
    from diffusers.video_processor import VideoProcessor

    from animate.rendering.decode import to_uint8

    processor = VideoProcessor(vae_scale_factor=8)
    flat = latents[0].permute(1, 0, 2, 3)
    out = []
    with torch.inference_mode():
        for start in range(0, len(flat), chunk):
            z = (flat[start:start + chunk].float() / vae.config.scaling_factor).to(vae.device, dtype)
            piece = vae.decode(z).sample.float().cpu()
            out.append(to_uint8(processor.postprocess_video(video=piece.permute(1, 0, 2, 3)[None],
                                                            output_type="np")[0]))
    return np.concatenate(out)


def timed(ctx: Ctx, fn):
    clean(ctx.device)
    weights = live_bytes(ctx.device)
    sync(ctx.device)
    t = time.perf_counter()
    value = fn()
    sync(ctx.device)
    return value, {"s": round(time.perf_counter() - t, 4), **memory(ctx.device, weights)}


def row_decode_paths(ctx: Ctx) -> dict:
    """The same latents decoded as before (fp32 VAE, floats to the host, uint8 there), with the fp16 VAE alone, and
    as now (the stack's fp16 VAE, uint8 on the device), and in bf16; agreement against the fp32 decode. Random
    weights do not have the overflow real SD1.5 VAEs can show in fp16: that is what the per-chunk fp32 redo is
    for."""
    import torch

    r = ctx.renderer(ctx.half)
    spec = ctx.spec(name="decode")
    pipe, latents = _latents(ctx, r, spec)
    chunk = spec.decode_chunk
    vae32 = copy.deepcopy(pipe.vae).to(dtype=torch.float32)
    out = {}
    for _ in range(2):  # the second pass is the measured one (first: cudnn's choices, allocator)
        old, out["fp32_host"] = timed(ctx, lambda: host_decode(vae32, latents, torch.float32, chunk))
        _, out["fp16_host"] = timed(ctx, lambda: host_decode(pipe.vae, latents, pipe.vae.dtype, chunk))
        new, out["fp16_device"] = timed(ctx, lambda: r.decode(pipe, latents, spec)[0])
    vae32 = None  # its memory back before the next decode
    vae_bf = copy.deepcopy(pipe.vae).to(dtype=torch.bfloat16)
    bf, out["bf16_host"] = timed(ctx, lambda: host_decode(vae_bf, latents, torch.bfloat16, chunk))
    vae_bf = None
    out["fp16_device_vs_fp32_host"] = round(out["fp16_device"]["s"] / max(1e-9, out["fp32_host"]["s"]), 3)
    out["fp16_host_vs_fp32_host"] = round(out["fp16_host"]["s"] / max(1e-9, out["fp32_host"]["s"]), 3)  # dtype alone
    out["fp16_device_vs_fp16_host"] = round(out["fp16_device"]["s"] / max(1e-9, out["fp16_host"]["s"]), 3)  # uint8
    out["fp16_levels"] = frame_diff(new, old)
    out["bf16_levels"] = frame_diff(bf, old)
    return out


def row_motion_adapter(ctx: Ctx) -> dict:
    """Weights on the device after a stack's build, with the motion adapter's tensors let go (now) and kept (before)."""
    import animate.rendering.fastpaths as fastpaths
    from animate.rendering.renderer import Renderer

    out = {}
    original = fastpaths.strip_motion_adapter
    for name, strip in (("kept", lambda pipe: 0), ("let_go", original)) if not ctx.smoke else (("let_go", original),):
        clean(ctx.device)
        fastpaths.strip_motion_adapter = strip
        try:
            t = time.perf_counter()
            r = Renderer(device=ctx.device, dtype=ctx.half, quiet_loading=True)
            r.stack_for(ctx.spec())
            sync(ctx.device)
            out[f"{name}_build_s"] = round(time.perf_counter() - t, 2)
        finally:
            fastpaths.strip_motion_adapter = original
        clean(ctx.device)
        out[f"{name}_weights_mb"] = mb(live_bytes(ctx.device))
        out[f"{name}_adapter_params_m"] = round(sum(
            p.numel() for p in r.stack_for(ctx.spec()).pipe.motion_adapter.parameters()) / 1e6, 2)
        del r
    if "kept_weights_mb" in out:
        out["saved_mb"] = round(out["kept_weights_mb"] - out["let_go_weights_mb"], 1)
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


def time_unet(ctx: Ctx, unet, args, kw, reps: int = 5, warm: int = 2) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(warm):
            unet(*args, **kw)
        times = []
        for _ in range(reps):
            sync(ctx.device)
            t = time.perf_counter()
            unet(*args, **kw)
            sync(ctx.device)
            times.append(time.perf_counter() - t)
    return median(times)


def row_forward_chunking(ctx: Ctx) -> dict:
    """One UNet call (CFG 1.5: both halves) with feed-forward chunking off, as diffusers' chunk_size=1 did it (a
    launch per token), and as the memory rung now does it (row slices of FF_SLICE_BYTES)."""
    from animate.rendering.memory import FF_SLICE_BYTES, chunk_feed_forward, unchunk_feed_forward

    pipe, args, kw = capture_unet_inputs(ctx, ctx.renderer(ctx.half), ctx.spec(guidance=1.5))
    unet = pipe.unet
    out = {"slice_mb": mb(FF_SLICE_BYTES)}
    _, out["off"] = timed(ctx, lambda: time_unet(ctx, unet, args, kw, reps=3, warm=1))
    unet.enable_forward_chunking(chunk_size=1, dim=1)
    try:
        _, out["per_token"] = timed(ctx, lambda: time_unet(ctx, unet, args, kw, reps=1, warm=0))
    finally:
        unet.disable_forward_chunking()
    chunk_feed_forward(unet)
    try:
        _, out["row_slices"] = timed(ctx, lambda: time_unet(ctx, unet, args, kw, reps=3, warm=1))
    finally:
        unchunk_feed_forward(unet)
    out["per_token_vs_off"] = round(out["per_token"]["s"] / max(1e-9, out["off"]["s"]), 2)
    out["row_slices_vs_off"] = round(out["row_slices"]["s"] / max(1e-9, out["off"]["s"]), 3)
    return out


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
        entry = {"tflop_per_step": sig(flops / 1e12),
                 "tflop_per_frame_step": sig(flops / 1e12 / ctx.shape["frames"] / (2 if guidance > 1 else 1)),
                 "unet_step_s": sig(unet_s), "unet_tflops": sig(flops / unet_s / 1e12), "flop_per_step": int(flops)}
        clips = ctx.results.get(f"4step_{key}")
        if clips:
            denoise = median(s["denoise_s"] for s in clips)
            entry["clip_denoise_tflops"] = sig(flops * 4 / denoise / 1e12)
        peak = peak_tflops(torch.cuda.get_device_name()) if ctx.device.startswith("cuda") else None
        entry["of_peak"] = sig(entry["unet_tflops"] / peak, 3) if peak else "unknown"
        out[key] = entry
    return out


def row_fp16_vs_fp32(ctx: Ctx) -> dict:
    spec = ctx.spec(name="precision")
    half = render_timed(ctx, ctx.renderer(ctx.half), spec, encode=False)
    r32 = ctx.renderer("fp32")
    if not ctx.smoke:
        render_timed(ctx, r32, spec, encode=False)  # warm-up
    full = render_timed(ctx, r32, spec, encode=False)
    return {**frame_diff(half["_frames"], full["_frames"]),
            "fp32_over_fp16_denoise": round(full["denoise_s"] / max(1e-9, half["denoise_s"]), 2),
            "fp32_denoise_s": full["denoise_s"], "fp16_denoise_s": half["denoise_s"]}


def row_nan_check(ctx: Ctx) -> dict:
    import torch

    out = {}
    for guidance in (1.0, 1.5):
        _, latents = _latents(ctx, ctx.renderer(ctx.half), ctx.spec(guidance=guidance))
        out[f"cfg{guidance:g}_latents_finite"] = bool(torch.isfinite(latents).all())
        out[f"cfg{guidance:g}_latent_absmax"] = round(float(latents.abs().max()), 3)
    retries = [s.get("numeric_retry") or s.get("decode_retry") for key, samples in ctx.results.items()
               if isinstance(samples, list) for s in samples]
    out["retries_in_clips"] = sum(1 for x in retries if x)
    return out


def row_decode_chunk_memory(ctx: Ctx) -> dict:
    from animate.rendering import fastpaths

    r = ctx.renderer(ctx.half)
    pipe, latents = _latents(ctx, r, ctx.spec())
    out = {"estimate_mb_per_frame": mb(fastpaths.decode_bytes_per_frame(pipe.vae, ctx.shape["size"],
                                                                       ctx.shape["size"]))}
    if ctx.device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        out["driver_free_mb"] = mb(free)
        out["allocator_aware_free_mb"] = mb(fastpaths.free_bytes(ctx.device))
    base = None
    for chunk in ctx.shape["chunks"]:
        spec = ctx.spec(decode_chunk=chunk)
        (frames, _, info), entry = timed(ctx, lambda: r.decode(pipe, latents, spec))
        entry["used_chunk"] = info["decode_chunk"]
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


def row_frames(ctx: Ctx, frames: int, encode: bool = True) -> dict:
    r = ctx.renderer(ctx.half)
    out = {k: v for k, v in render_timed(ctx, r, ctx.spec(frames=frames, windows=True, name=f"f{frames}"),
                                         encode=encode).items() if not k.startswith("_")}
    base = ctx.results.get("4step_cfg1")
    if base:
        per = median(s["denoise_s"] for s in base) / ctx.shape["frames"]
        out["denoise_per_frame_vs_16"] = round(out["denoise_s"] / frames / max(1e-9, per), 2)
    return out


def row_gif_threads(ctx: Ctx) -> dict:
    from animate.encode import gif

    samples = ctx.results.get("4step_cfg1")
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


class Recompiles(logging.Handler):
    """Dynamo's recompile reasons (the `recompiles` log artifact), kept for the JSON as well as printed."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        line = record.getMessage().strip().splitlines()
        self.lines.append(" / ".join(x.strip() for x in line if x.strip())[:300])


def row_compile(ctx: Ctx, budget: Budget) -> dict:
    """--compile (inductor; on the CPU smoke dynamo's `eager` backend) against eager in the same run, interleaved,
    then clips that must not recompile (other frame counts) or run eagerly (windows); every compile counted and
    every recompile's reason logged. CFG on after CFG off compiles once more (a batch of 2 after 1), so that clip
    runs last and only if the first compile's time is left in the budget."""
    import torch
    from torch._dynamo.utils import counters

    backend = "eager" if ctx.smoke else True
    torch._dynamo.reset()
    torch._logging.set_logs(recompiles=True)
    handler = Recompiles()
    logging.getLogger("torch._dynamo.guards.__recompiles").addHandler(handler)
    try:
        eager, compiled = ctx.renderer(ctx.half), ctx.renderer(ctx.half, compile=backend)
        spec = ctx.spec(name="compile")
        start = counters["stats"]["unique_graphs"]
        t = time.perf_counter()
        render_timed(ctx, compiled, spec, encode=False)  # compiles
        compile_s = time.perf_counter() - t
        graphs = counters["stats"]["unique_graphs"] - start
        e, c = [], []
        for i in range(max(2, ctx.shape["reps"])):
            for name in (("e", "c") if i % 2 == 0 else ("c", "e")):
                (e if name == "e" else c).append(render_timed(ctx, eager if name == "e" else compiled, spec,
                                                              encode=False))
        others = {}
        for label, other in (("frames_minus_4", ctx.spec(frames=ctx.shape["frames"] - 4, name="c12")),
                             ("windowed", ctx.spec(frames=ctx.shape["windows"][0], windows=True, name="cw")),
                             ("cfg1.5", ctx.spec(guidance=1.5, name="c15"))):
            if label == "cfg1.5" and budget.left() < 1.2 * compile_s:
                others[label] = {"skipped": f"{budget.left():.0f} s left, the first compile took {compile_s:.0f} s"}
                continue
            before = counters["stats"]["unique_graphs"]
            t = time.perf_counter()
            res = compiled.render(other)
            sync(ctx.device)
            others[label] = {"s": round(time.perf_counter() - t, 2),
                             "new_graphs": counters["stats"]["unique_graphs"] - before,
                             "eager": res.info.get("compiled", {}).get("eager")}
        return {"backend": compiled.compiled.get("backend"), "first_clip_s": round(compile_s, 2),
                "graphs_first_clip": graphs, "graphs_total": counters["stats"]["unique_graphs"] - start,
                "eager_denoise_s": round(median(s["denoise_s"] for s in e), 3),
                "compiled_denoise_s": round(median(s["denoise_s"] for s in c), 3),
                "speedup": round(median(s["denoise_s"] for s in e) / max(1e-9, median(s["denoise_s"] for s in c)), 3),
                **{f"frames_{k}": v for k, v in frame_diff(c[-1]["_frames"], e[-1]["_frames"]).items()},
                "then": others, "recompiles": handler.lines[:20]}
    finally:
        logging.getLogger("torch._dynamo.guards.__recompiles").removeHandler(handler)
        torch._logging.set_logs()


# ------------------------------------------------------------------------------------------- main
def no_cuda_line() -> str | None:
    """Why the full check cannot run here, or None where CUDA is present."""
    import torch

    if torch.cuda.is_available():
        return None
    return (f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}): "
            "run it on a GPU machine, or add --smoke to check the harness on the CPU")


def run(args, save) -> dict:
    import torch

    from animate.cli import quiet_libraries

    quiet_libraries()
    device = "cpu" if args.smoke else "cuda"
    if args.smoke:
        torch.set_num_threads(1)
    budget = Budget(args.budget or (240 if args.smoke else 200))
    ctx = Ctx(args, device)
    result = {"rows": {}, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": budget.seconds}
    check = Check(budget, ctx, skip=[x for x in (args.skip or "").split(",") if x],
                  save=lambda: save({**result, "rows": check.rows,
                                     "total_s": round(time.perf_counter() - budget.start, 1)}))
    full = not args.smoke
    check.row("environment", 0, row_environment, ctx)
    if check.row("build", 0, row_build, ctx) is None:
        for name in ROWS[2:]:
            check.rows[name] = {"skipped": "the models could not be built"}
    else:
        check.row("sdpa", 0, row_sdpa, ctx, keep=HALF)
        for steps in (4, 8):
            for guidance in (1.0, 1.5):
                check.row(f"clip_{steps}step_cfg{guidance:g}", (8 + steps) if full else 1, row_clip, ctx, steps,
                          guidance, keep=HALF)
        check.row("lora_fused", 15 if full else 1, row_lora, ctx, keep=HALF)
        check.row("plain_diffusers", 40 if full else 1, row_plain, ctx)
        check.row("decode_paths", 10 if full else 1, row_decode_paths, ctx, keep=HALF)
        check.row("motion_adapter", 20 if full else 1, row_motion_adapter, ctx)
        check.row("forward_chunking", 15 if full else 1, row_forward_chunking, ctx, keep=HALF)
        check.row("frames_24_windows", 10 if full else 1, row_frames, ctx, ctx.shape["windows"][0], keep=HALF)
        check.row("frames_64_windows", 15 if full else 1, row_frames, ctx, ctx.shape["windows"][1], False, keep=HALF)
        check.row("frames_256_memory", 30 if full else 1, row_frames, ctx, ctx.shape["long"], False, keep=HALF)
        check.row("decode_chunk_memory", 8 if full else 1, row_decode_chunk_memory, ctx, keep=HALF)
        check.row("fp16_vs_fp32", 20 if full else 1, row_fp16_vs_fp32, ctx, keep=HALF)
        check.row("nan_check", 4 if full else 1, row_nan_check, ctx, keep=HALF)
        check.row("unet_flops", 8 if full else 1, row_unet_flops, ctx, keep=HALF)
        check.row("channels_last", 8 if full else 1, row_channels_last, ctx, keep=HALF)
        check.row("gif_threads", 10 if full else 1, row_gif_threads, ctx, keep=HALF)
        # Last, under its own budget: inductor's compile of the SD1.5 UNet takes minutes.
        compile_budget = Budget(args.compile_budget)
        check.row("compile", 60 if full else 1, row_compile, ctx, compile_budget, keep=HALF, budget=compile_budget)
    ctx.renderers.clear()
    ctx.tmp.cleanup()
    return {**result, "rows": check.rows, "total_s": round(time.perf_counter() - budget.start, 1)}


def table(result: dict) -> str:
    lines = ["| row | result |", "|---|---|"]
    for name in ROWS:
        row = result["rows"].get(name, {"error": "missing"})
        lines.append(f"| {name} | {summary(row)} |")
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for gpu_check.json and gpu_check.md (made if missing)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: checks the harness, not a GPU")
    ap.add_argument("--budget", type=float, help="time budget of every row but compile, seconds (default 200; "
                                                 "smoke 240)")
    ap.add_argument("--compile-budget", type=float, default=120.0,
                    help="the compile row's own budget, seconds (default 120; 0 skips it)")
    ap.add_argument("--skip", metavar="ROW,ROW", help=f"rows not to run (recorded as skipped): {', '.join(ROWS[2:])}")
    args = ap.parse_args(argv)
    if not args.smoke:
        why = no_cuda_line()
        if why:
            print(why, file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_check{'-smoke' if args.smoke else ''}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"

    def save(result: dict) -> None:
        write_atomic(json_path, json.dumps(result, indent=2, default=str))

    result = run(args, save)
    save(result)
    text = table(result)
    write_atomic(md_path, f"{text}\n\ntotal {result['total_s']} s (budget {result['budget_s']:.0f} s, compile "
                          f"{args.compile_budget:.0f} s)\n")
    print()
    print(text)
    print(f"\ntotal {result['total_s']} s (budget {result['budget_s']:.0f} s); JSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
