"""Performance benchmark: animate against plain diffusers and each fast path against its absence, as ratios of
runs measured in the same process, interleaved, medians (never a bare wall time, never a pass/fail on time).

    python -m benchmarks.perf [--size tiny,small] [--reps N] [--quick] [--json PATH]

Rows (per model size: `tiny` = the offline kit, Python-bound; `small` = a larger random SD1.5-shaped model)
  overhead      Renderer.render vs the same clip through one plain AnimateDiffPipeline call (goal ≤ 1.03×)
  throughput    a 3-clip script through run_specs (fresh Renderer, GIF outputs) vs one load + 3 bare diffusers
                renders + their GIF encodes (goal ≥ 0.9× of that ideal); wall / (render + encode) of the run
  LoRA          denoise step with 3 LoRAs fused / unfused / none;  guidance 1 vs > 1;  travel vs one prompt
  model paths   one-window FreeNoise blocks run as plain blocks, and the UNet's dtype/device read from its first
                parameter, each vs diffusers' own (whole clip)
  embeddings    a clip with the text-embedding cache (hit) vs without; encode_prompt hit vs miss
  GIF threads   the GIF encoder on its thread pool vs one thread (same bytes)
  memory        peak RSS vs frames and vs decode chunk (and peak VRAM on CUDA)
  start-up      cold process → first denoising step; `animate --help` vs `python -c "import torch"` (< 0.1×)
  CUDA paths    where the CPU says something: frames made uint8 as on the device vs the host postprocessing;
                the forward_chunking rung's row slices vs diffusers' chunk_size=1 and vs off (one UNet call);
                the motion adapter's parameters let go (`--only cuda` runs this section alone)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.render_bench import (PROMPT, WEIGHTS, build_small, load_plain_loras, make_spec, quiet,
                                     section_fuse, section_guidance, tiny_kit)
from benchmarks.render_bench import Table as StepTable
from benchmarks.timing import (clock, interleaved, machine_note, med, now, peak_rss_mb, reset_peak_rss,
                               seconds_text, since)

ROOT = Path(__file__).resolve().parents[1]


class Rows:
    """Rows of (candidate, baseline) CPU/wall seconds with the ratio candidate / baseline and the goal."""

    def __init__(self):
        self.rows: list[dict] = []

    def ratio(self, size, what, cand_label, cand, base_label, base, goal: str = "", better: str = "lower"):
        r_cpu = cand[1] / base[1] if base[1] > 0 else float("nan")
        r_wall = cand[0] / base[0] if base[0] > 0 else float("nan")
        self.rows.append(dict(size=size, what=what, candidate=cand_label, cand_cpu=cand[1], cand_wall=cand[0],
                              baseline=base_label, base_cpu=base[1], base_wall=base[0], ratio_cpu=r_cpu,
                              ratio_wall=r_wall, goal=goal, met=_met(r_cpu, goal)))

    def value(self, size, what, value: str):
        self.rows.append(dict(size=size, what=what, value=value))

    def markdown(self) -> str:
        fmt = seconds_text
        out = ["| size | row | candidate (CPU s) | baseline (CPU s) | × baseline CPU | × baseline wall | goal |",
               "|---|---|---|---|---:|---:|---|"]
        for r in self.rows:
            if "value" in r:
                out.append(f"| {r['size']} | {r['what']} | {r['value']} | | | | |")
                continue
            goal = f"{r['goal']} {'met' if r['met'] else 'not met'}" if r["goal"] else ""
            out.append(f"| {r['size']} | {r['what']} | {r['candidate']}: {fmt(r['cand_cpu'])} | {r['baseline']}: "
                       f"{fmt(r['base_cpu'])} | **{r['ratio_cpu']:.3f}** | {r['ratio_wall']:.3f} | {goal} |")
        return "\n".join(out)


def _met(ratio: float, goal: str) -> bool | None:
    if not goal:
        return None
    op, value = goal.split()
    return ratio <= float(value) if op == "≤" else ratio >= float(value) if op == "≥" else ratio < float(value)


# ---------------------------------------------------------------------------------------- plain diffusers
def plain_pipe(kit, spec):
    """One AnimateDiffPipeline loaded the plain way, with the spec's LoRAs fused at its weights."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    from animate.models.schedulers import build_scheduler

    adapter = MotionAdapter.from_pretrained(spec.motion_adapter.ref)
    pipe = AnimateDiffPipeline.from_pretrained(spec.model.ref, motion_adapter=adapter)
    pipe.scheduler = build_scheduler(spec.scheduler, dict(pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    if load_plain_loras(pipe, spec):
        pipe.fuse_lora(components=["unet"], lora_scale=1.0)
    return pipe


def plain_render(pipe, spec):
    import numpy as np
    import torch

    with torch.inference_mode():
        out = pipe(prompt=PROMPT, num_frames=spec.frames, height=spec.height, width=spec.width,
                   num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                   generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np").frames[0]
    return np.ascontiguousarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8))


def section_overhead(r, kit, rows: Rows, reps: int, steps: int) -> None:
    import numpy as np

    spec = make_spec(kit, weights=WEIGHTS[0], steps=steps, fuse=True)
    pipe = plain_pipe(kit, spec)
    got = {}
    r.render(spec), plain_render(pipe, spec)  # warm both
    # The goal row: four times the other rows' repeats (a 1 s clip moves ±10 % run to run on shared cores).
    res = interleaved(reps * 8, animate=lambda: clock(lambda: got.__setitem__("a", r.render(spec).frames)),
                      diffusers=lambda: clock(lambda: got.__setitem__("d", plain_render(pipe, spec))))
    diff = int(np.abs(got["a"].astype(int) - got["d"].astype(int)).max())
    rows.ratio(kit.size, f"overhead: one clip, 3 LoRAs fused, {steps} steps (frames differ ≤ {diff}/255)",
               "animate", med(res["animate"]), "plain diffusers call", med(res["diffusers"]), goal="≤ 1.03")


def section_throughput(kit, rows: Rows, reps: int, clips: int, steps: int) -> None:
    import json as _json

    from animate.encode import encode
    from animate.events import EncodeDone, Events, Recorder
    from animate.run.runner import run_specs

    from animate.spec import spec_from_fields

    specs = [spec_from_fields({**_fields(make_spec(kit, weights=WEIGHTS[i % len(WEIGHTS)], steps=steps, fuse=True,
                                                   seed=i)), "outputs": ["gif"]}, name=f"c{i}")[0]
             for i in range(clips)]
    tmp = tempfile.TemporaryDirectory(prefix="perf-")
    overlap = []

    def animate_run():
        out = Path(tmp.name) / f"run{len(overlap)}"
        recorder = Recorder()
        t = now()
        run_specs(specs, out=out, script_stem="perf", events=Events(recorder), device="cpu", keep_frames=False)
        took = since(t)
        render = sum(sum(_json.loads((out / "perf" / f"{s.stem}.json").read_text())["timings"].get(k, 0)
                         for k in ("load_s", "denoise_s", "decode_s")) for s in specs)
        enc = sum(e.seconds for e in recorder.events if isinstance(e, EncodeDone))
        overlap.append(took[0] / (render + enc))
        return took

    def ideal():
        t = now()
        pipe = None
        for i, s in enumerate(specs):
            if pipe is None:
                pipe = plain_pipe(kit, s)
            else:  # the next clip's LoRA weights, fused (what a careful plain script does)
                pipe.unfuse_lora()
                pipe.set_adapters([a.name for a in s.adapters], adapter_weights=[a.weight for a in s.adapters])
                pipe.fuse_lora(components=["unet"], lora_scale=1.0)
            frames = plain_render(pipe, s)
            encode("gif", frames, Path(tmp.name) / f"ideal{i}.gif", fps=8)
        return since(t)

    res = interleaved(reps, animate=animate_run, ideal=ideal)
    a, b = med(res["animate"]), med(res["ideal"])
    # throughput = ideal time / animate time: goal ≥ 0.9
    rows.ratio(kit.size, f"throughput: {clips}-clip script + GIFs vs one load + {clips} bare renders + encodes "
               f"(× here = ideal / animate)", "ideal", b, "animate run", a, goal="≥ 0.9")
    rows.value(kit.size, "overlap: run wall / (render + encode summed), median",
               f"{sorted(overlap)[len(overlap) // 2]:.2f} (1.00 = nothing overlapped)")
    tmp.cleanup()


def section_travel(r, kit, rows: Rows, reps: int, steps: int) -> None:
    from animate.spec import spec_from_fields

    base = make_spec(kit, weights=None, steps=steps)
    travel = spec_from_fields({**_fields(base), "prompt": {0: PROMPT, kit.frames // 2: "a grey wolf in fog"}},
                              name="travel")[0]
    res = interleaved(reps, plain=lambda: clock(lambda: r.render(base)), travel=lambda: clock(lambda: r.render(travel)))
    rows.ratio(kit.size, "travel: 2 keyframes vs one prompt (whole clip)", "travel", med(res["travel"]),
               "one prompt", med(res["plain"]))


def section_model_paths(r, kit, rows: Rows, reps: int, steps: int) -> None:
    """The one-window FreeNoise blocks and the UNet's quick dtype/device, each against diffusers' own path on the
    same stack (switched off for the baseline runs only)."""
    import contextlib

    import numpy as np
    from diffusers.models.attention import FreeNoiseTransformerBlock

    spec = make_spec(kit, weights=WEIGHTS[0], steps=steps, fuse=True)
    unet = r.stack_for(spec).pipe.unet

    @contextlib.contextmanager
    def diffusers_free_noise():
        blocks = [m for m in unet.modules() if isinstance(m, FreeNoiseTransformerBlock) and "forward" in vars(m)]
        saved = [vars(m).pop("forward") for m in blocks]
        try:
            yield
        finally:
            for m, forward in zip(blocks, saved):
                m.forward = forward

    @contextlib.contextmanager
    def diffusers_dtype():
        quick = type(unet)
        unet.__class__ = quick.__mro__[1]
        try:
            yield
        finally:
            unet.__class__ = quick

    def without(ctx, key):
        def go():
            with ctx():
                got[key] = r.render(spec).frames
        return lambda: clock(go)

    for label, ctx in (("one-window FreeNoise blocks as plain blocks", diffusers_free_noise),
                       ("UNet dtype/device from its first parameter", diffusers_dtype)):
        got = {}
        r.render(spec)
        res = interleaved(reps * 2, fast=lambda: clock(lambda: got.__setitem__("fast", r.render(spec).frames)),
                          diffusers=without(ctx, "diffusers"))
        diff = int(np.abs(got["fast"].astype(int) - got["diffusers"].astype(int)).max())
        rows.ratio(kit.size, f"{label}: whole clip (frames differ ≤ {diff}/255)", "fast path", med(res["fast"]),
                   "diffusers' own", med(res["diffusers"]))


def _fields(spec) -> dict:
    """The script fields of a make_spec clip, to vary one of them."""
    return dict(model=spec.model.ref, motion_adapter=spec.motion_adapter.ref, scheduler=spec.scheduler,
                steps=spec.steps, guidance=spec.guidance, frames=spec.frames, width=spec.width, height=spec.height,
                seed=spec.seed, prompt=spec.prompt, fuse=spec.fuse,
                adapters=[{"name": a.name, "source": a.source.ref, "weight": a.weight, "kind": a.kind}
                          for a in spec.adapters])


def section_embeddings(kit, rows: Rows, reps: int, steps: int) -> None:
    import torch

    from animate.rendering.renderer import Renderer

    on, off = Renderer(device="cpu", quiet_loading=True), Renderer(device="cpu", quiet_loading=True, embed_cache=False)
    seeds = iter(range(100, 10_000))
    spec = lambda: make_spec(kit, weights=None, steps=steps, guidance=2.0, seed=next(seeds))  # noqa: E731
    on.render(spec()), off.render(spec())
    res = interleaved(reps * 2, cached=lambda: clock(lambda: on.render(spec())),
                      plain=lambda: clock(lambda: off.render(spec())))
    rows.ratio(kit.size, "text embeddings cached across seeds: whole clip (CFG 2)", "cache hit", med(res["cached"]),
               "no cache", med(res["plain"]))
    pipe = on.stack_for(spec()).pipe
    original = type(pipe).encode_prompt.__get__(pipe)
    args = ([PROMPT], "cpu", 1, True, [""])
    with torch.inference_mode():
        res = interleaved(reps * 4, hit=lambda: clock(lambda: pipe.encode_prompt(*args)),
                          miss=lambda: clock(lambda: original(*args)))
    rows.ratio(kit.size, "encode_prompt (prompt + negative): cache hit vs text encoder", "hit", med(res["hit"]),
               "text encoder", med(res["miss"]))


def section_memory(kit, rows: Rows, steps: int) -> None:
    from animate.rendering.renderer import Renderer
    from animate.spec import spec_from_fields

    r = Renderer(device="cpu", quiet_loading=True)
    base = make_spec(kit, weights=None, steps=steps)
    r.render(base)
    parts = []
    for frames in (8, 16, 32):
        reset_peak_rss()
        before = peak_rss_mb()
        r.render(spec_from_fields({**_fields(base), "frames": frames}, name="m")[0])
        parts.append(f"{frames} f: +{peak_rss_mb() - before:.0f}")
    rows.value(kit.size, f"peak RSS above the loaded stack vs frames ({kit.width}², MB)", ", ".join(parts))
    # Decode memory needs a size where the VAE's activations show above the process: 16 random latents at 256².
    import torch

    pipe = r.stack_for(base).pipe
    side = 256 // pipe.vae_scale_factor
    latents = torch.randn(1, 4, 16, side, side, generator=torch.Generator().manual_seed(0))
    parts = []
    for chunk in (1, 4, 16):
        spec = spec_from_fields({**_fields(base), "frames": 16, "width": 256, "height": 256, "decode_chunk": chunk},
                                name="m")[0]
        reset_peak_rss()
        before = peak_rss_mb()
        r.decode(pipe, latents, spec)
        parts.append(f"chunk {chunk}: +{peak_rss_mb() - before:.0f}")
    rows.value(kit.size, "peak RSS of decoding 16 frames at 256² vs decode chunk (MB above before)", ", ".join(parts))


def section_gif(rows: Rows, reps: int) -> None:
    import numpy as np

    from animate.encode import gif

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (512, 1024, 3)).astype(np.float32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, 2, 1)) / 4
    frames = np.stack([np.roll(base, 6 * i, axis=1)[:, :512] for i in range(16)])
    # Grain on every frame, as generated frames differ in every pixel (millions of distinct colours).
    frames = np.clip(frames + rng.normal(0, 3, frames.shape), 0, 255).astype(np.uint8)
    out = {}
    tmp = tempfile.TemporaryDirectory(prefix="perf-gif-")
    old = os.environ.pop("ANIMATE_ENCODE_THREADS", None)
    threads = gif.encode_threads()

    def enc(name, n):
        def go():
            if n:
                os.environ["ANIMATE_ENCODE_THREADS"] = str(n)
            else:
                os.environ.pop("ANIMATE_ENCODE_THREADS", None)
            path = Path(tmp.name) / f"{name}.gif"
            gif.encode_gif(frames, path, fps=8)
            out[name] = path.read_bytes()
        return go

    def with_children(fn):
        """(wall, CPU of this process and its ffmpeg children): palettegen runs in a child."""
        def go():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, cpu = clock(fn)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return wall, cpu + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return go

    pool = max(2, threads)
    res = interleaved(reps, pool=with_children(enc("pool", pool)), one=with_children(enc("one", 1)))
    rows.ratio("-", f"GIF 16 frames 512² with grain, {pool} threads vs 1 (same bytes: {out['pool'] == out['one']}; the "
               f"default here is {threads}: half the usable CPUs)", f"{pool} threads", med(res["pool"]), "1 thread",
               med(res["one"]))
    def every_pixel(fn):
        def go():
            sampled = gif.palettegen_input
            gif.palettegen_input = lambda clip: clip  # every pixel, full precision: palettegen as before
            try:
                fn()
            finally:
                gif.palettegen_input = sampled
        return go

    res = interleaved(reps, sampled=with_children(enc("sampled", 1)),
                      every=with_children(every_pixel(enc("every", 1))))
    rows.ratio("-", f"GIF 16 frames 512² with grain (CPU with ffmpeg's): palettegen on ≤ 2^20 pixels at 6 bits vs "
               f"every pixel ({len(out['sampled']) / len(out['every']):.3f}× the bytes)", "sample", med(res["sampled"]),
               "every pixel", med(res["every"]))
    if old is not None:
        os.environ["ANIMATE_ENCODE_THREADS"] = old
    else:
        os.environ.pop("ANIMATE_ENCODE_THREADS", None)
    tmp.cleanup()


# ---------------------------------------------------------------------------------------- cold processes
FIRST_STEP = """
import time, sys
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
from animate.rendering.renderer import Renderer
from animate.spec import spec_from_fields
def step(spec, i, n):
    if i == 1:
        print("FIRST", time.process_time(), flush=True)
        sys.stdout.flush()
        import os
        os._exit(0)
Renderer(device="cpu", quiet_loading=True, on_step=step).render(spec_from_fields(dict(preset="tiny", frames=8,
    width=32, height=32, steps=2, prompt="a fox"), name="cold")[0])
"""


def child(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process, CPU from RUSAGE_CHILDREN."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def section_startup(rows: Rows, reps: int) -> None:
    py = sys.executable
    animate_help = [py, "-c", "import sys; from animate.cli import main; sys.argv=['animate', '--help']; main()"]
    res = interleaved(reps * 2, help=lambda: child(animate_help), torch=lambda: child([py, "-c", "import torch"]))
    probe = subprocess.run([py, "-c", "import sys\nfrom animate.cli import main\ntry:\n    main(['--help'])\n"
                            "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'diffusers', "
                            "'transformers', 'numpy') if m in sys.modules))"], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    heavy = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else probe.stderr[-200:]
    rows.ratio("-", f"`animate --help` vs `python -c 'import torch'` (heavy modules imported by --help: {heavy})",
               "animate --help", med(res["help"]), "import torch", med(res["torch"]), goal="< 0.1")
    from animate.util.cpus import usable_cpus

    env = {k: v for k, v in os.environ.items() if k not in ("ANIMATE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    default = subprocess.run([py, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True,
                             text=True, env=env).stdout.strip()
    rows.value("-", "CPU threads: torch's default here → what the Renderer sets (usable CPUs)",
               f"{default} → {min(int(default or 0), usable_cpus()) if default.isdigit() else usable_cpus()}")
    res = interleaved(reps, first=lambda: child([py, "-c", FIRST_STEP]), bare=lambda: child([py, "-c", "pass"]))
    rows.ratio("-", "cold process → first denoising step (tiny kit, loads the stack)", "first step",
               med(res["first"]), "bare python", med(res["bare"]))


# ------------------------------------------------------------------------------------------- CUDA paths
def section_cuda_paths(r, kit, rows: Rows, reps: int) -> None:
    """The CUDA fast paths a CPU can measure (benchmarks/gpu_check.py measures them on a GPU)."""
    import json as _json

    import numpy as np
    import torch
    from diffusers import MotionAdapter
    from diffusers.video_processor import VideoProcessor

    from animate.rendering.fastpaths import frames_to_uint8
    from animate.rendering.memory import chunk_feed_forward, unchunk_feed_forward
    from animate.rendering.decode import to_uint8

    if kit.size == "tiny":  # the same at every model size: once
        torch.manual_seed(0)
        images = torch.randn(16, 3, 512, 512) * 0.7
        processor = VideoProcessor(vae_scale_factor=8)
        got = {}

        def host():
            got["h"] = to_uint8(processor.postprocess_video(video=images.permute(1, 0, 2, 3)[None],
                                                            output_type="np")[0])

        res = interleaved(reps * 2, host=lambda: clock(host),
                          device=lambda: clock(lambda: got.__setitem__("d", frames_to_uint8(images)[0])))
        same = np.array_equal(got["h"], got["d"])
        rows.ratio("-", f"uint8: a decoded 16×512² clip, torch arithmetic (on the device there) vs the host's "
                   f"postprocessing (equal frames: {same})", "frames_to_uint8", med(res["device"]),
                   "postprocess + to_uint8", med(res["host"]))
        config = {k: v for k, v in _json.loads((ROOT / "benchmarks" / "configs" / "motion_adapter_v1_5_2.json")
                                                .read_text()).items() if not k.startswith("_")}
        with torch.device("meta"):
            real = sum(p.numel() for p in MotionAdapter.from_config(config).parameters())
        rows.value("-", "motion adapter let go after the UNet is built (v1.5-2 config)",
                   f"{real / 1e6:.0f} M parameters, {real * 2 / 2 ** 30:.2f} GiB in fp16")
    spec = make_spec(kit, weights=None, steps=1, guidance=1.5)
    pipe, kwargs, _ = r.pipeline_call(spec)
    seen = {}
    hook = pipe.unet.register_forward_pre_hook(lambda m, a, kw: seen.setdefault("c", (a, dict(kw))),
                                               with_kwargs=True)
    with torch.inference_mode():
        pipe(**kwargs)
    hook.remove()
    args, kw = seen["c"]
    unet = pipe.unet

    def call():
        with torch.inference_mode():
            return unet(*args, **kw).sample

    want = call()

    def per_token():
        unet.enable_forward_chunking(chunk_size=1, dim=1)
        try:
            return clock(call)
        finally:
            unet.disable_forward_chunking()

    def sliced():
        chunk_feed_forward(unet)
        try:
            return clock(call)
        finally:
            unchunk_feed_forward(unet)

    chunk_feed_forward(unet)
    diff = float((call() - want).abs().max())
    unchunk_feed_forward(unet)
    res = interleaved(reps, off=lambda: clock(call), per_token=per_token, sliced=sliced)
    rows.ratio(kit.size, f"forward_chunking rung: row slices vs diffusers' chunk_size=1, one UNet call with CFG "
               f"(max |Δ| vs off {diff:.1e})", "row slices", med(res["sliced"]), "chunk_size=1", med(res["per_token"]))
    rows.ratio(kit.size, "forward_chunking rung: row slices vs chunking off", "row slices", med(res["sliced"]),
               "off", med(res["off"]))


# ---------------------------------------------------------------------------------------- main
def run_size(size: str, rows: Rows, reps: int, quick: bool, only: str | None = None) -> dict:
    from animate.rendering.renderer import Renderer

    meta = {}
    if size == "small":
        tmp = tempfile.TemporaryDirectory(prefix="perf-small-")
        t = time.perf_counter()
        kit = build_small(Path(tmp.name))
        kit.tmp = tmp
        meta["build_small_s"] = round(time.perf_counter() - t, 1)
    else:
        kit = tiny_kit()
    meta["kit"] = kit.note
    steps = 2 if quick or size == "small" else 4
    r = Renderer(device="cpu", quiet_loading=True)
    r.render(make_spec(kit, weights=WEIGHTS[0], steps=2))  # warm-up: stack and LoRAs loaded
    if only == "cuda":
        section_cuda_paths(r, kit, rows, reps)
        return meta
    section_overhead(r, kit, rows, reps, steps)
    steps_table = StepTable()
    section_fuse(r, kit, steps_table, reps, 3 if quick or size == "small" else 4)
    section_guidance(r, kit, steps_table, reps, 3 if quick or size == "small" else 4)
    for row in steps_table.rows:
        if "value" in row:
            rows.value(size, f"LoRA: {row['what']}", row["value"])
        elif row["what"].startswith("one fuse"):
            continue
        else:
            rows.ratio(size, row["what"], row["candidate"], (row["cand_wall"], row["cand_cpu"]), row["baseline"],
                       (row["base_wall"], row["base_cpu"]))
    section_travel(r, kit, rows, reps, steps)
    section_model_paths(r, kit, rows, reps, steps)
    section_cuda_paths(r, kit, rows, reps)
    del r
    section_embeddings(kit, rows, reps, steps)
    section_memory(kit, rows, 2)
    if size == "tiny":
        section_throughput(kit, rows, max(1, reps - 1) if not quick else 1, 3, steps)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="tiny,small", help="comma list of tiny, small (default both)")
    ap.add_argument("--reps", type=int, default=0, help="interleaved repeats (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="one repeat, fewer steps: a smoke test of the harness")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared cores)")
    ap.add_argument("--json", type=Path, help="also write rows and metadata here")
    ap.add_argument("--only", choices=["cuda"], help="run one section alone (cuda: the CUDA fast paths' CPU rows)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ["ANIMATE_THREADS"] = str(args.threads)  # Renderers keep the benchmark's thread count
    quiet()
    reps = args.reps or (1 if args.quick else 3)
    rows = Rows()
    t0 = now()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reps": reps}
    for size in [s for s in args.size.split(",") if s]:
        meta[size] = run_size(size, rows, reps, args.quick, args.only)
    if not args.only:
        section_gif(rows, reps)
        section_startup(rows, reps)
    took = since(t0)
    meta.update(machine=machine_note(), runtime_wall_s=round(took[0], 1), runtime_cpu_s=round(took[1], 1),
                peak_rss_mb=round(peak_rss_mb()))
    print(f"perf benchmark {meta['date']}; {meta['machine']}; {reps} interleaved repeat(s), medians; "
          f"runtime {meta['runtime_wall_s']} s wall / {meta['runtime_cpu_s']} s CPU (this process)")
    for size in args.size.split(","):
        if size in meta:
            print(f"- {size}: {meta[size]['kit']}")
    print("Ratio = candidate / baseline (lower is faster), CPU time (all threads) and wall time, same run.\n")
    print(rows.markdown())
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows.rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
