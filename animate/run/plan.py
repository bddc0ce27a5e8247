"""Preflight: group clips by model stack, estimate time and memory, and warn about the silent mistakes
users of other AnimateDiff tools hit (facts/peers.md). Loads no model and downloads nothing."""
from __future__ import annotations

import re
from pathlib import Path

from animate.models.family import SDXL, SDXL_COST, base_family
from animate.spec import ClipSpec
from animate.spec.clipspec import labeled_sources
from animate.models.family import motion_max_frames
from animate.events import Plan
from animate.models.family import sdxl_gib
from animate.models.fit import family_warnings
from animate.models.sources import hub_offline, hub_snapshot, is_cached
from animate.models.weights import parameter_count
from animate.outputs.framestore import human_bytes
from animate.rendering.device import pick_device
from animate.rendering.pose import pose_arguments
from animate.rendering.video_input import refine_spec
from motion.context import SPLIT_FROM_FRAMES, context_plan, splits_long_clip
from motion.errors import MotionError, PoseSourceError
from motion.loras import weight_label
from motion.pose import count_frames, detect_kind, frames_to_extract
import dataclasses
import os
import click

# Rough per-UNet-call cost of SD1.5 + motion module at 16 frames, 512×512 (seconds), and weights in GiB.
# Figures are order-of-magnitude (A100-class GPU fp16; CPU fp32 ~60× slower); the tiny kit has its own model.
SECONDS_PER_CALL = {"cuda": 0.22, "mps": 1.5, "cpu": 14.0}
WEIGHTS_GIB = {"fp16": 2.6, "fp32": 5.2}


SD15_UNET_PARAMS = 860e6  # where a UNet's own size is unknown (an uncached hub id), SD1.5's is assumed
OVERHEAD_BOUND_PARAMS = 50e6  # a smaller UNet (a test or toy model) costs mostly per-call overhead, not compute
# Memory beside weights and activations: on CPU the process itself (torch, diffusers, transformers measured
# 0.9 GiB RSS on import), on CUDA the context and kernels' workspace.
RUNTIME_GIB = {"cpu": 0.9, "cuda": 0.5, "mps": 0.3}


def parameters(src, prefix: str = "") -> int | None:
    """Numbers held by a model source's .safetensors files (headers only; a hub source only when cached), or
    None when they cannot be read without loading or downloading."""
    return _parameters_at(hub_snapshot(src) if src.kind == "hub" else (src.local_file() or Path(src.ref)), prefix)


def unet_parameters(src) -> int | None:
    """The base UNet's parameter count: its unet/ folder, or a single checkpoint's diffusion_model tensors."""
    if src.kind == "folder":
        return _parameters_at(Path(src.ref) / "unet")
    if src.kind == "file":
        return parameters(src, "model.diffusion_model.")
    return None


def _parameters_at(path: Path | None, prefix: str = "") -> int | None:
    if path is None or not path.exists():
        return None
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    counts = [parameter_count(f, prefix) for f in files if f.suffix == ".safetensors"]
    return sum(counts) if counts and None not in counts else None


def warnings_for(spec: ClipSpec) -> list[str]:
    """Plain-language warnings for one clip."""

    # LoRA slot and base-family mistakes are errors raised by the preflight, not warnings here.
    out = []
    kinds = {a.kind for a in spec.adapters if a.weight != 0}
    motion_name = (spec.motion_adapter.ref + " " + (spec.motion_adapter.weight_name or "")).lower()
    animatelcm = "animatelcm" in motion_name or any("animatelcm" in a.source.ref.lower() for a in spec.adapters)
    lightning = "lightning" in motion_name
    max_frames = motion_max_frames(spec.motion_adapter)
    if spec.frames > max_frames and spec.context.length is None:
        out.append(f"{spec.frames} frames is more than the motion adapter's {max_frames}: "
                   "rendering uses sliding context windows (FreeNoise)")
    if spec.context.length is not None and spec.context.length > max_frames:
        out.append(f"context length {spec.context.length} is more than the motion adapter's {max_frames} "
                   "frames: motion past its positional encoding degrades")
    if spec.scheduler in ("lcm", "animatelcm") and "lcm" not in kinds and not animatelcm:
        out.append(f"scheduler {spec.scheduler} without an LCM-LoRA or AnimateLCM gives blurry, washed-out frames; "
                   "add an adapter with kind: lcm (e.g. lcm-lora-sd15) or use ddim/euler")
    if spec.scheduler in ("lcm", "animatelcm") and spec.guidance > 2.5:
        out.append(f"guidance {spec.guidance:g} is high for LCM (1.0–2.0 expected): frames come out burnt")
    if lightning:
        m = re.search(r"(\d+)step", motion_name)
        if m and int(m.group(1)) != spec.steps:
            out.append(f"the Lightning checkpoint is distilled for {m.group(1)} steps but the clip uses {spec.steps}")
        if spec.guidance > 1.5:
            out.append(f"guidance {spec.guidance:g} with Lightning (1.0 expected) gives burnt frames")
        if spec.scheduler != "lightning":
            out.append(f"Lightning checkpoints expect scheduler lightning (got {spec.scheduler})")
    if spec.scheduler not in ("lcm", "animatelcm", "lightning", "lightning-xl") and "lcm" in kinds and spec.steps > 12:
        out.append(f"an LCM-LoRA with {spec.scheduler} at {spec.steps} steps: use scheduler lcm and 4–8 steps")
    if spec.pose:
        out.extend(pose_warnings(spec))
    out.extend(family_warnings(spec))
    out.extend(download_notes(spec))
    if isinstance(spec.prompt, dict) and 0 not in spec.prompt:
        out.append(f"prompt travel starts at frame {min(spec.prompt)}: frames before it hold the first keyframe")
    return out


def download_notes(spec: ClipSpec) -> list[str]:
    """Hub sources that are not cached yet: the first render downloads them."""

    sources = [(f"adapter {name}" if name else field, src) for field, name, src in labeled_sources(spec)
               if field != "unet"]  # (as before: a hub UNet's note is not given here)
    offline = hub_offline()
    return [f"{label} {src.describe()} is not cached yet: "
            + ("the hub is offline (HF_HUB_OFFLINE=1), so rendering here will fail" if offline
               else "the first render downloads it")
            for label, src in sources if src.kind == "hub" and not is_cached(src)]


EXTRACT_SECONDS_PER_FRAME = 1.3  # person-video: 20 MediaPipe looks at 416 px, one CPU core (benchmarks/pose_bench.py)


def pose_report(spec: ClipSpec) -> dict:
    """Pose source kind and frame count against the clip's, without drawing anything; for a person video
    also how many of its frames still go to the detector and about how long that takes."""

    pose = spec.pose
    try:
        kind = pose.kind or detect_kind(pose.source)
        count = count_frames(pose.source, kind=kind)
        report = {"kind": kind, "source_frames": count, "clip_frames": spec.frames}
        if kind == "person-video":
            args = {**pose_arguments(spec), "kind": kind}
            extract = frames_to_extract(args.pop("source"), **args)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            report.update(extract_frames=extract,
                          extract_estimate_s=round(extract * EXTRACT_SECONDS_PER_FRAME
                                                   / min(cores, max(extract, 1)), 1))
    except PoseSourceError as exc:
        return {"error": str(exc)}
    return report


def pose_warnings(spec: ClipSpec) -> list[str]:
    report = pose_report(spec)
    if "error" in report:
        return [report["error"]]
    count, kind = report["source_frames"], report["kind"]
    if count is None or count in (1, spec.frames):
        return []
    if kind in ("skeleton", "openpose-json") and not spec.pose.source_fps and \
            not str(spec.pose.source).lower().endswith((".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")):
        return [f"pose source has {count} frames but the clip has {spec.frames}: set pose source_fps to resample "
                f"by time, or make the counts match"]
    return [f"pose source has {count} frames for {spec.frames} clip frames: sampled by time at {spec.fps:g} fps"]


def context_report(spec: ClipSpec) -> dict:
    """The clip's context windows as the renderer will set them (the adapter's length read from its config)."""

    c = spec.context
    try:
        plan = context_plan(spec.frames, motion_max_frames(spec.motion_adapter), c.length, c.overlap,
                            c.weighting, c.noise, c.blend)
    except MotionError as exc:
        return {"error": str(exc)}
    split = splits_long_clip(spec.frames, plan.blend)
    text = plan.describe() + (f"; split inference (from {SPLIT_FROM_FRAMES} frames)" if split else "")
    return {**plan.record(), "split_inference": split, "text": text}


def free_init_report(spec: ClipSpec) -> dict | None:
    """FreeInit's cost: the denoising passes it adds (its iterations × the steps)."""
    from animate.rendering.steps import denoising_steps

    if not spec.free_init:
        return None
    total = denoising_steps(spec)
    return {**dataclasses.asdict(spec.free_init), "denoising_steps": total, "cost": round(total / spec.steps, 2)}


def keyframes_report(spec: ClipSpec) -> dict | None:
    """Image keyframes: the frames they pin, the SparseCtrl model, scale and fit."""
    kf = spec.keyframes
    if not kf:
        return None
    return {"frames": sorted(kf.images), "sparsectrl": kf.sparsectrl.describe(), "scale": kf.scale,
            "fit": kf.fit}
def video_report(spec: ClipSpec) -> dict | None:
    """Video-to-video and refine: the source, the strength and the denoising steps each pass runs."""
    from animate.rendering.video_input import denoising_steps, refine_size, refine_spec

    if not spec.init_video and not spec.refine:
        return None
    out: dict = {}
    parts = []
    if spec.init_video:
        iv = spec.init_video
        out["init_video"] = {**dataclasses.asdict(iv), "denoising_steps": denoising_steps(spec)}
        parts.append(f"from {iv.source} (fit {iv.fit}, start {iv.start:g}s) at strength {iv.strength:g}"
                     f" → {denoising_steps(spec)} denoising steps")
    if spec.refine:
        second = refine_spec(spec)
        width, height = refine_size(spec)
        out["refine"] = {**dataclasses.asdict(spec.refine), "width": width, "height": height,
                         "denoising_steps": denoising_steps(second)}
        parts.append(f"refine at {width}x{height}, strength {spec.refine.strength:g} → "
                     f"{denoising_steps(second)} denoising steps")
    return {**out, "text": "; ".join(parts)}


def estimate(spec: ClipSpec, device: str, dtype: str) -> tuple[float, float]:
    """(seconds, GiB) for one clip: a rough guide, not a promise. FreeInit multiplies the denoising passes."""
    from animate.rendering.steps import denoising_steps

    if spec.refine:  # two passes: the clip, then the refine pass at its larger size

        s1, g1 = estimate(dataclasses.replace(spec, refine=None), device, dtype)
        s2, g2 = estimate(refine_spec(spec), device, dtype)
        return s1 + s2, max(g1, g2)

    calls = denoising_steps(spec) * (2 if spec.guidance > 1 else 1)
    control = 1.4 if spec.pose or spec.keyframes else 1.0  # the ControlNet (or SparseCtrl) adds ~40% per call
    kind = device.split(":")[0]
    unet = unet_parameters(spec.model)
    if unet is not None and unet < OVERHEAD_BOUND_PARAMS:
        # Overhead-bound (the tiny kit: ~0.3 s per call for 16 frames at 64x64 on one CPU thread).
        scale = (spec.frames / 16) * (spec.width * spec.height) / (64 * 64)
        seconds = calls * (0.05 + 0.3 * scale) * (0.1 if kind in ("cuda", "mps") else 1.0) * control
    else:
        scale = (spec.frames / 16) * (spec.width * spec.height) / (512 * 512)
        size = (unet or SD15_UNET_PARAMS) / SD15_UNET_PARAMS
        cost = SDXL_COST if base_family(spec.model) == SDXL and unet is None else size
        seconds = calls * scale * control * cost * SECONDS_PER_CALL.get(kind, SECONDS_PER_CALL["cpu"])
    return seconds, memory_gib(spec, kind, dtype, unet)


def memory_gib(spec: ClipSpec, kind: str, dtype: str, unet: int | None) -> float:
    """Peak device memory of one clip: the stack's weights (read from its files' headers where they can be) and
    the denoising activations, which grow with the UNet's width, the latent pixels and classifier-free guidance."""
    precision = "fp16" if dtype in ("fp16", "bf16") else "fp32"
    if unet is None and base_family(spec.model) == SDXL:
        return RUNTIME_GIB.get(kind, 0.5) + sdxl_gib(spec, precision)
    counts = [parameters(src) for _, _, src in labeled_sources(spec)]
    if unet is None or None in counts:
        weights = WEIGHTS_GIB[precision]
    else:
        weights = sum(counts) * (2 if precision == "fp16" else 4) / 2 ** 30
    width = (unet or SD15_UNET_PARAMS) / SD15_UNET_PARAMS
    latent = (spec.frames / 16) * (spec.width * spec.height) / (512 * 512)
    activations = 1.6 * latent * width ** 0.5 * (2 if spec.guidance > 1 else 1)
    return RUNTIME_GIB.get(kind, 0.5) + weights + activations


def build_plan(specs: list[ClipSpec], *, jobs: list | None = None, device: str = "auto", dtype: str = "auto",
               out=None, store=None) -> dict:
    """The fields of the `plan` event: every clip with its render key, what it still needs (render, encode,
    record or nothing) and which outputs would be encoded, model loads, estimates and warnings."""

    try:
        dev = pick_device(device)
    except Exception:
        dev = device
    dt = dtype if dtype not in (None, "auto") else ("fp16" if dev.startswith(("cuda", "mps")) else "fp32")
    by_stem = {job.stem: job for job in jobs or []}
    stacks: dict[tuple, dict] = {}
    adapters: set = set()
    clips = []
    for spec in specs:
        job = by_stem.get(spec.stem)
        status = job.status if job else "render"
        key = (spec.model.key(), spec.motion_adapter.key(), spec.unet.key() if spec.unet else None)
        stack = stacks.setdefault(key, {"model": spec.model.describe(),
                                        "motion_adapter": spec.motion_adapter.describe(), "clips": 0})
        if base_family(spec.model) == SDXL:
            stack["family"] = "sdxl"
        if spec.unet is not None:
            stack["unet"] = spec.unet.describe()
        if status == "render":
            stack["clips"] += 1
            adapters.update(a.source.key() for a in spec.adapters)
        seconds, gib = estimate(spec, dev, dt)
        clips.append({"clip": spec.stem, "seed": spec.seed, "frames": spec.frames, "steps": spec.steps,
                      "size": f"{spec.width}x{spec.height}", "scheduler": spec.scheduler,
                      "adapters": {a.name: weight_label(a.weight) for a in spec.adapters},
                      "outputs": list(spec.outputs),
                      "render_key": job.render_key if job else None, "status": status,
                      "encode": list(job.encode) if job else list(spec.outputs),
                      "pose": pose_report(spec) if spec.pose else None, "context": context_report(spec),
                      "loop": spec.loop, "free_init": free_init_report(spec),
                      "keyframes": keyframes_report(spec),
                      "video": video_report(spec),
                      "estimate_s": round(seconds, 2) if status == "render" else 0.0,
                      "estimate_gib": round(gib, 2), "warnings": warnings_for(spec)})
    entries, size = store.size() if store is not None else (0, 0)
    return {"out": str(out) if out is not None else None, "device": dev, "dtype": dt, "clips": clips,
            "to_render": sum(c["status"] == "render" for c in clips),
            "to_encode": sum(c["status"] == "encode" for c in clips),
            "up_to_date": sum(c["status"] == "done" for c in clips),
            "stacks": [s for s in stacks.values() if s["clips"]],
            "loads": {"base_models": sum(1 for s in stacks.values() if s["clips"]), "adapters": len(adapters)},
            "total_estimate_s": round(sum(c["estimate_s"] for c in clips), 1),
            "frame_store": {"entries": entries, "bytes": size}}


def _pose_text(report: dict | None) -> str:
    if not report:
        return ""
    if "error" in report:
        return ", pose (unreadable)"
    frames = "any length" if report["source_frames"] is None else f"{report['source_frames']} frames"
    if report.get("extract_frames"):
        frames += f"; detects {report['extract_frames']} of them, ~{report['extract_estimate_s']:g}s"
    elif "extract_frames" in report:
        frames += "; keypoints cached"
    return f", pose {report['kind']} ({frames})"


STATUS_TEXT = {"render": "render", "encode": "encode from stored frames", "record": "rewrite the sidecar only",
               "done": "up to date"}


def print_plan(specs: list[ClipSpec], *, jobs: list | None = None, device: str = "auto", dtype: str = "auto",
               out=None, store=None, events=None) -> dict:

    plan = build_plan(specs, jobs=jobs, device=device, dtype=dtype, out=out, store=store)
    if events is not None:
        events.emit(Plan(**plan))
        return plan
    echo = click.echo
    echo(f"{len(plan['clips'])} clip(s) on {plan['device']} ({plan['dtype']}): {plan['to_render']} to render, "
         f"{plan['to_encode']} to encode from stored frames, {plan['up_to_date']} up to date; "
         f"{plan['loads']['base_models']} model stack(s), {plan['loads']['adapters']} adapter load(s)")
    for stack in plan["stacks"]:
        unet = f" + unet {stack['unet']}" if stack.get("unet") else ""
        family = " (SDXL)" if stack.get("family") == "sdxl" else ""
        echo(f"  stack: {stack['model']}{family} + {stack['motion_adapter']}{unet} → {stack['clips']} clip(s)")
    for c in plan["clips"]:
        adapters = ", ".join(f"{n}:{w}" for n, w in c["adapters"].items()) or "no adapters"
        todo = STATUS_TEXT[c["status"]]
        if c["status"] in ("render", "encode"):
            todo += f" → {', '.join(c['encode'])}"
        cost = f"; ~{c['estimate_s']:g} s, ~{c['estimate_gib']:g} GiB" if c["status"] == "render" else ""
        echo(f"  {c['clip']}: {todo} (seed {c['seed']}, {c['frames']} frames, {c['steps']} steps {c['scheduler']}, "
             f"{c['size']}, {adapters}{_pose_text(c['pose'])}){cost}")
        context = c["context"]
        echo(f"    context: {context.get('text') or context.get('error')}" + ("; loops (last frame → first)"
                                                                           if c["loop"] else ""))
        if c["free_init"]:
            fi = c["free_init"]
            echo(f"    free_init: {fi['iters']} iterations ({fi['method']}{', fast' if fi['fast'] else ''}) → "
                 f"{fi['denoising_steps']} denoising steps, ×{fi['cost']:g} the cost")
        if c.get("keyframes"):
            kf = c["keyframes"]
            echo(f"    keyframes: frames {', '.join(map(str, kf['frames']))} through SparseCtrl {kf['sparsectrl']} "
                 f"(scale {kf['scale']:g}, fit {kf['fit']})")
        if c["video"]:
            echo(f"    video: {c['video']['text']}")
        for w in c["warnings"]:
            echo(f"    warning: {w}")
    if plan["out"] is not None:
        store_info = plan["frame_store"]
        echo(f"frame store: {store_info['entries']} clip(s), {human_bytes(store_info['bytes'])} "
             f"(`animate clean` prunes frames no manifest needs)")
    echo(f"estimated total: ~{plan['total_estimate_s']:g} s (rough)")
    return plan
