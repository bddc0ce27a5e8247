"""Render benchmark: what the Renderer's reuse, LoRA switching and fusing buy, as ratios against baselines
measured in the same run (never absolute pass/fail on wall time: the cores are shared).

    python -m benchmarks.render_bench [--quick] [--size tiny|small] [--reps N] [--write]

Sections
  1. pipeline reuse   N clips sharing a stack: one Renderer vs a fresh AnimateDiffPipeline + LoRAs per clip
  2. LoRA switching   re-weighting with set_adapters (LoraMixer) vs unloading and reloading the LoRA files
  3. fused LoRAs      per-step denoise time with 3 LoRAs unfused vs fused (and no LoRA); one fuse+unfuse
  4. guidance         per-step time at guidance 7.5 (CFG: batch of 2) vs 1.0
  5. peak RSS         resource.getrusage high-water mark after each section

Models: `tiny` is the offline kit (animate.models.tiny), so small that Python overhead dominates; `small` builds
(deterministically, into a temp dir) a larger SD1.5-shaped random model, motion adapter and LoRAs so that
compute matters. Repeats are interleaved (A B, B A, ...) and medians reported.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.timing import (add, clock, interleaved, machine_note, med, now, peak_rss_mb, seconds_text,
                               since)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "a red fox running through snow"
WEIGHTS = [(0.8, 0.5, 0.5), (0.6, 1.0, 0.2), (1.0, 0.2, 0.9), (0.7, 0.7, 0.0)]  # per-clip LoRA weights


# ---------------------------------------------------------------------------------------------- setup
def quiet() -> None:
    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


@dataclass
class Kit:
    """Where the models of one size live, and the clip shape that goes with them."""

    size: str
    model: str
    motion: str
    loras: list  # (name, file, kind)
    width: int
    height: int
    frames: int
    note: str
    tmp: object = None  # TemporaryDirectory kept alive for `small`


def tiny_kit() -> Kit:
    from animate.models.sources import resolve_source

    loras = [("lcm", "tiny-lcm", "lcm"), ("zoom", "tiny-zoom-in", "motion"), ("pan", "tiny-pan-left", "motion")]
    return Kit("tiny", "tiny", "tiny", [(n, resolve_source(s).ref, k) for n, s, k in loras], 32, 32, 8,
               "animate.models.tiny kit: UNet channels (8, 8), cross-attn 8, VAE x8 → 4x4 latents")


def build_small(dest: Path) -> Kit:
    """An SD1.5-shaped random model big enough that the UNet's compute, not Python, dominates a step.

    Same layout as the tiny kit (diffusers folders + LoRA .safetensors written by peft), fixed seeds."""
    import torch
    from diffusers import (AutoencoderKL, MotionAdapter, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel, UNetMotionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    from animate.models.tiny_parts import make_tokenizer, save_lora

    seed = 4321
    tokenizer, vocab = make_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=5, vocab_size=vocab,
        max_position_embeddings=77, projection_dim=32, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                            ).save_pretrained(dest / "base", safe_serialization=True)
    torch.manual_seed(seed + 3)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_norm_num_groups=32,
                            motion_num_attention_heads=8, motion_max_seq_length=32, use_motion_mid_block=True)
    adapter.save_pretrained(dest / "motion-adapter", safe_serialization=True)
    spatial = r"^(?!.*motion_modules).*(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$"
    motion = r".*motion_modules.*(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$"
    save_lora(unet, spatial, "lcm", dest / "lcm-lora", "pytorch_lora_weights.safetensors", offset=50)
    munet = UNetMotionModel.from_unet2d(unet, adapter)
    save_lora(munet, motion, "zoom", dest / "zoom", "diffusion_pytorch_model.safetensors", offset=51)
    save_lora(munet, motion, "pan", dest / "pan", "diffusion_pytorch_model.safetensors", offset=52)
    loras = [("lcm", dest / "lcm-lora" / "pytorch_lora_weights.safetensors", "lcm"),
             ("zoom", dest / "zoom" / "diffusion_pytorch_model.safetensors", "motion"),
             ("pan", dest / "pan" / "diffusion_pytorch_model.safetensors", "motion")]
    return Kit("small", str(dest / "base"), str(dest / "motion-adapter"), [(n, str(p), k) for n, p, k in loras],
               48, 48, 8, "built here: UNet channels (32, 64), cross-attn 32, text hidden 32, VAE x2 → 24x24 latents")


def make_spec(kit: Kit, *, weights=None, steps: int, guidance: float = 1.0, fuse: bool = False, seed: int = 3,
              name: str = "clip"):
    """One ClipSpec through the script layer, as `animate` resolves it. weights=None → no LoRAs."""
    from animate.spec import spec_from_fields

    adapters = [] if weights is None else [{"name": n, "source": f, "weight": w, "kind": k}
                                           for (n, f, k), w in zip(kit.loras, weights)]
    return spec_from_fields(dict(model=kit.model, motion_adapter=kit.motion, adapters=adapters, scheduler="ddim",
                                 steps=steps, guidance=guidance, frames=kit.frames, width=kit.width,
                                 height=kit.height, seed=seed, prompt=PROMPT, fuse=fuse), name=name)[0]


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Table:
    rows: list = field(default_factory=list)

    def add(self, section: str, what: str, base_label: str, base: tuple, cand_label: str, cand: tuple,
            ratio_note: str = "faster"):
        """base, cand: (wall, cpu) seconds. Ratio = baseline / candidate."""
        def ratio(k):
            return base[k] / cand[k] if cand[k] > 0 else float("nan")
        self.rows.append(dict(section=section, what=what, baseline=base_label, base_wall=base[0], base_cpu=base[1],
                              candidate=cand_label, cand_wall=cand[0], cand_cpu=cand[1], ratio_cpu=ratio(1),
                              ratio_wall=ratio(0), note=ratio_note))

    def note(self, section: str, what: str, value: str):
        self.rows.append(dict(section=section, what=what, value=value))

    def markdown(self) -> str:
        fmt = seconds_text
        lines = ["| # | measurement | baseline (CPU) | candidate (CPU) | ratio CPU | ratio wall |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            if "value" in r:
                lines.append(f"| {r['section']} | {r['what']} | {r['value']} | | | |")
                continue
            lines.append(f"| {r['section']} | {r['what']} | {r['baseline']}: {fmt(r['base_cpu'])} | "
                         f"{r['candidate']}: {fmt(r['cand_cpu'])} | **{r['ratio_cpu']:.2f}x** {r['note']} | "
                         f"{r['ratio_wall']:.2f}x |")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- sections
def load_plain_loras(pipe, spec) -> list[str]:
    """Each of the spec's LoRA files loaded the way a diffusers user does, active at the spec's weights."""
    names = []
    for adapter in spec.adapters:
        p = Path(adapter.source.ref)
        pipe.load_lora_weights(str(p.parent), weight_name=p.name, adapter_name=adapter.name)
        names.append(adapter.name)
    if names:
        pipe.set_adapters(names, adapter_weights=[a.weight for a in spec.adapters])
    return names


def naive_clip(kit: Kit, spec) -> None:
    """What peers' scripts do per clip: build a fresh pipeline, load every LoRA, render, decode."""
    import torch
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

    adapter = MotionAdapter.from_pretrained(spec.motion_adapter.ref)
    pipe = AnimateDiffPipeline.from_pretrained(spec.model.ref, motion_adapter=adapter)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, timestep_spacing="linspace",
                                               beta_schedule="linear", steps_offset=1)
    pipe.set_progress_bar_config(disable=True)
    load_plain_loras(pipe, spec)
    with torch.inference_mode():
        pipe(prompt=PROMPT, num_frames=spec.frames, height=spec.height, width=spec.width,
             num_inference_steps=spec.steps, guidance_scale=spec.guidance,
             generator=torch.Generator("cpu").manual_seed(spec.seed), output_type="np")
    del pipe, adapter


def section_reuse(kit: Kit, table: Table, reps: int, clips: int, steps: int) -> dict:
    from animate.rendering.renderer import Renderer

    specs = [make_spec(kit, weights=WEIGHTS[i % len(WEIGHTS)], steps=steps, name=f"c{i}") for i in range(clips)]
    counts = {}

    def renderer():
        r = Renderer(device="cpu")
        per = [clock(lambda s=s, r=r: r.render(s)) for s in specs]
        counts.update(r.load_counts)
        del r
        return per

    def naive():
        return [clock(lambda s=s: naive_clip(kit, s)) for s in specs]

    res = interleaved(reps, renderer=renderer, naive=naive)
    tot_r = med([add(*p) for p in res["renderer"]])
    tot_n = med([add(*p) for p in res["naive"]])
    naive_per = med([x for p in res["naive"] for x in p])
    table.add("1", f"{clips} clips, one stack, 3 LoRAs, {steps} steps: total", "fresh pipe/clip", tot_n,
              "Renderer", tot_r)
    table.add("1", "per clip: first clip (Renderer builds the stack)", "fresh pipe/clip", naive_per,
              "Renderer clip 1", med([p[0] for p in res["renderer"]]))
    table.add("1", "per clip: later clips (stack + LoRAs reused)", "fresh pipe/clip", naive_per,
              f"Renderer clips 2..{clips}", med([x for p in res["renderer"] for x in p[1:]]))
    table.note("1", "Renderer loads per run", ", ".join(f"{k.split(':')[0]}×{v}" if not k.startswith("lora")
                                                           else f"{Path(k.split(':')[1]).parent.name}×{v}"
                                                           for k, v in counts.items()))
    return res


def section_switch(r, kit: Kit, table: Table, reps: int) -> None:
    from motion.loras import load_lora

    spec = make_spec(kit, weights=WEIGHTS[0], steps=2)
    pipe, _, stack = r.pipeline_call(spec)  # loads the LoRAs once (warm)
    names = [stack.adapters[a.source.key()] for a in spec.adapters]
    i = [0]

    def next_weights():
        i[0] += 1
        return list(WEIGHTS[i[0] % len(WEIGHTS)])

    def set_adapters():
        w = next_weights()
        return clock(lambda: stack.mixer.apply(names, w, fuse=False))

    def reload():
        w = next_weights()

        def go():
            pipe.unload_lora_weights()
            for a, n in zip(spec.adapters, names):
                load_lora(pipe, a.source.ref, kind=a.source.kind, adapter_name=n)
            stack.mixer.apply(names, w, fuse=False)
        return clock(go)

    res = interleaved(reps, set_adapters=set_adapters, reload=reload)
    # set_adapters is ms-scale: take several samples per repeat so its median is not one noisy shot
    res["set_adapters"] += [set_adapters() for _ in range(4 * reps)]
    table.add("2", "switch 3 LoRA weights between clips", "unload + reload files", med(res["reload"]),
              "set_adapters", med(res["set_adapters"]))


def step_times(r, spec) -> tuple[list[float], float]:
    """(per-step seconds from step-end callbacks, seconds spent preparing: LoRA mixing / fusing)."""
    import torch

    t0 = now()
    pipe, kwargs, _ = r.pipeline_call(spec)
    prep = since(t0)
    stamps = []

    def cb(p, i, t, kw):
        stamps.append(now())
        return kw

    with torch.inference_mode():
        pipe(**kwargs, callback_on_step_end=cb)
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps, stamps[1:])], prep


def section_fuse(r, kit: Kit, table: Table, reps: int, steps: int) -> None:
    w = WEIGHTS[0]
    specs = {"unfused": make_spec(kit, weights=w, steps=steps, fuse=False),
             "fused": make_spec(kit, weights=w, steps=steps, fuse=True),
             "none": make_spec(kit, weights=None, steps=steps)}
    res = interleaved(reps, **{k: (lambda s=s: step_times(r, s)[0]) for k, s in specs.items()})
    per = {k: med([x for run in v for x in run]) for k, v in res.items()}
    table.add("3", "denoise step, 3 LoRAs active", "unfused", per["unfused"], "fused", per["fused"])
    table.add("3", "denoise step, LoRA overhead", "unfused", per["unfused"], "no LoRA", per["none"],
              ratio_note="(unfused / none)")
    # One fuse + unfuse round trip, from the unfused state (what a clip with new weights costs when fuse: true).
    stack = r.stack_for(specs["unfused"])
    names = [stack.adapters[a.source.key()] for a in specs["unfused"].adapters]
    trips = []
    for k in range(max(2, reps)):
        stack.mixer.apply(names, list(w), fuse=False)
        ww = list(WEIGHTS[k % len(WEIGHTS)])
        trips.append(add(clock(lambda: stack.mixer.apply(names, ww, fuse=True)),
                         clock(lambda: stack.mixer.apply(names, ww, fuse=False))))
    trip = med(trips)
    table.add("3", "one fuse + unfuse (3 LoRAs)", "fuse+unfuse", trip, "unfused step", per["unfused"],
              ratio_note="steps' worth")
    gain = per["unfused"][1] - per["fused"][1]
    table.note("3", "break-even: steps for one fuse+unfuse to pay off (CPU)",
               f"{trip[1] / gain:.1f} steps" if gain > 0 else "never (fused step not faster here)")


def section_guidance(r, kit: Kit, table: Table, reps: int, steps: int) -> None:
    g1 = make_spec(kit, weights=None, steps=steps, guidance=1.0)
    g7 = make_spec(kit, weights=None, steps=steps, guidance=7.5)
    res = interleaved(reps, g1=lambda: step_times(r, g1)[0], g7=lambda: step_times(r, g7)[0])
    per = {k: med([x for run in v for x in run]) for k, v in res.items()}
    table.add("4", "denoise step, CFG (2x UNet batch)", "guidance 7.5", per["g7"], "guidance 1.0", per["g1"],
              ratio_note="(expect ≤ 2)")


# ---------------------------------------------------------------------------------------------- main
def run(args) -> tuple[Table, dict]:
    import torch

    torch.set_num_threads(args.threads)
    quiet()
    import diffusers

    from animate.rendering.renderer import Renderer

    t_start = time.perf_counter()
    meta = {"size": args.size, "quick": args.quick, "rss_start_mb": peak_rss_mb(), "diffusers": diffusers.__version__,
            "animate": str(Path(sys.modules["animate"].__file__).parent)}
    if args.size == "small":
        tmp = tempfile.TemporaryDirectory(prefix="render-bench-")
        t = time.perf_counter()
        kit = build_small(Path(tmp.name))
        kit.tmp = tmp
        meta["build_small_s"] = round(time.perf_counter() - t, 1)
    else:
        kit = tiny_kit()
    quick = args.quick
    reps = args.reps or (1 if quick else 3)
    clips = 2 if quick else 3
    steps_clip = 2 if quick else 4
    steps_step = 3 if quick else (4 if args.size == "small" else 6)  # small: ~0.8 s a step, keep runs ≲ 3 min

    table = Table()
    rss = {}
    # Warm-up (not timed): imports, first pipeline build, first LoRA loads. This Renderer is then the shared,
    # already-warm pipeline for sections 2-4.
    t = time.perf_counter()
    r = Renderer(device="cpu")
    r.render(make_spec(kit, weights=WEIGHTS[0], steps=2))
    meta["warmup_s"] = round(time.perf_counter() - t, 1)
    rss["warm-up"] = peak_rss_mb()

    section_switch(r, kit, table, reps)
    rss["2 switching"] = peak_rss_mb()
    section_fuse(r, kit, table, reps, steps_step)
    rss["3 fusing"] = peak_rss_mb()
    section_guidance(r, kit, table, reps, steps_step)
    rss["4 guidance"] = peak_rss_mb()
    del r
    gc.collect()
    section_reuse(kit, table, reps, clips, steps_clip)
    rss["1 reuse"] = peak_rss_mb()
    table.note("5", "peak RSS (high-water) after: " + ", ".join(rss),
               " → ".join(f"{v:.0f}" for v in rss.values()) + " MB")
    meta.update(reps=reps, clips=clips, steps_per_clip=steps_clip, steps_per_step_test=steps_step,
                runtime_s=round(time.perf_counter() - t_start, 1), cpu_s=round(time.process_time(), 1),
                peak_rss_mb=round(peak_rss_mb()),
                machine=machine_note(), kit=kit.note,
                clip=f"{kit.frames} frames {kit.width}x{kit.height}, ddim, 3 LoRAs (lcm + 2 motion), fp32 CPU")
    # Sections run 2-4 first (on the warm-up Renderer), then 1; the table lists them in order.
    table.rows.sort(key=lambda row: row["section"])
    return table, meta


def report(table: Table, meta: dict) -> str:
    return "\n".join([
        f"### size `{meta['size']}`{' (--quick)' if meta['quick'] else ''}",
        "",
        f"- model: {meta['kit']}",
        f"- clip: {meta['clip']}; {meta['clips']} clips × {meta['steps_per_clip']} steps in section 1, "
        f"{meta['steps_per_step_test']} steps per step-timing run; {meta['reps']} interleaved repeat(s), medians",
        f"- machine: {meta['machine']}",
        f"- runtime {meta['runtime_s']} s wall, {meta['cpu_s']} s CPU (warm-up {meta['warmup_s']} s"
        + (f", building the small model {meta['build_small_s']} s" if "build_small_s" in meta else "")
        + f"); peak RSS {meta['peak_rss_mb']} MB; diffusers {meta['diffusers']}",
        "",
        "Ratio = baseline / candidate (>1: the candidate is faster), both measured in this run.",
        "",
        table.markdown(),
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.render_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, fewer clips and steps (~40 s on tiny)")
    ap.add_argument("--size", choices=["tiny", "small"], default="tiny",
                    help="tiny: the offline kit (Python-bound); small: a larger random SD1.5-shaped model")
    ap.add_argument("--reps", type=int, default=0, help="interleaved repeats (default 3, 1 with --quick)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared cores)")
    ap.add_argument("--write", metavar="MD", nargs="?", const=str(Path(__file__).with_name("RENDER.md")),
                    help="also write the figures into this markdown file's section for this size "
                         "(default benchmarks/RENDER.md)")
    ap.add_argument("--json", action="store_true", help="print rows and metadata as JSON instead")
    args = ap.parse_args(argv)
    table, meta = run(args)
    text = report(table, meta)
    if args.json:
        print(json.dumps({"meta": meta, "rows": table.rows}, indent=2))
    else:
        print(text)
    if args.write:
        write_section(Path(args.write), meta, text)
    return 0


def write_section(path: Path, meta: dict, text: str) -> None:
    """Replace (or append) this size's section between markers, leaving the rest of the file alone."""
    tag = f"{meta['size']}{'-quick' if meta['quick'] else ''}"
    begin, end = f"<!-- render_bench:{tag}:begin -->", f"<!-- render_bench:{tag}:end -->"
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block + "\n"
    path.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
