"""Jobs benchmark: what encoding on worker threads while the next clip denoises buys, and what re-encoding from
the frame store saves, as ratios against baselines measured in the same run.

    python -m benchmarks.jobs_bench [--clips 4] [--size 96] [--frames 16] [--steps 1] [--formats gif,mp4,webm]

Rows
  serial     max_pending=1: each clip's encoders finish before the next clip denoises (the old behaviour)
  streaming  max_pending=2: clip N encodes while clip N+1 denoises (the default)
  re-encode  add one output to the finished script: frames come from the store, no pipeline call

For each run it prints the script's wall time, render time (load + denoise + decode) and encode time summed
over clips, and wall / (render + encode): 1.0 means nothing overlapped, lower is better. On 2 shared CPU cores the
tiny model's denoising competes with the encoders for the same cores; on a GPU host denoising leaves the CPU
free, so the overlap is larger.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_once(specs, out: Path, renderer, *, max_pending: int) -> dict:
    from animate.events import EncodeDone, Events, Recorder
    from animate.run.runner import run_specs

    recorder = Recorder()
    t0 = time.perf_counter()
    run_specs(specs, out=out, script_stem="bench", renderer=renderer, events=Events(recorder),
              max_pending=max_pending, workers=2)
    wall = time.perf_counter() - t0
    render = 0.0
    for spec in specs:
        timings = json.loads((out / "bench" / f"{spec.stem}.json").read_text())["timings"]
        render += sum(timings.get(k, 0.0) for k in ("load_s", "denoise_s", "decode_s"))
    encode = sum(e.seconds for e in recorder.events if isinstance(e, EncodeDone))
    return {"wall": wall, "render": render, "encode": encode}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--formats", default="gif,mp4,webm")
    args = parser.parse_args(argv)

    import torch

    from animate.cli import quiet_libraries
    from animate.rendering.renderer import Renderer
    from animate.spec import spec_from_fields

    quiet_libraries()
    torch.set_num_threads(1)
    formats = [f for f in args.formats.split(",") if f]
    fields = dict(preset="tiny", frames=args.frames, width=args.size, height=args.size, steps=args.steps,
                  outputs=formats)
    specs = [spec_from_fields({**fields, "prompt": f"a lighthouse, take {i}", "seed": i}, name=f"clip{i}")[0]
             for i in range(args.clips)]
    renderer = Renderer(device="cpu", quiet_loading=True)
    renderer.render(specs[0])  # load once, outside both timed runs
    rows = []
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp:
        for name, pending in (("serial", 1), ("streaming", 2)):
            rows.append((name, run_once(specs, Path(tmp) / name, renderer, max_pending=pending)))
        from animate.events import Events
        from animate.run.runner import run_specs

        extra = [spec_from_fields({**fields, "outputs": formats + ["webp"], "prompt": s.prompt, "seed": s.seed},
                                  name=s.name)[0] for s in specs]
        calls = []
        original = renderer.render
        renderer.render = lambda spec, *a, **kw: calls.append(spec.stem) or original(spec, *a, **kw)
        t0 = time.perf_counter()
        run_specs(extra, out=Path(tmp) / "streaming", script_stem="bench", renderer=renderer, events=Events())
        reencode = time.perf_counter() - t0
        renderer.render = original

    print(f"{args.clips} clips, {args.frames} frames at {args.size}x{args.size}, {args.steps} steps, outputs "
          f"{','.join(formats)}; tiny model on CPU ({torch.get_num_threads()} torch thread)")
    print("| run | wall s | render s | encode s | wall / (render + encode) | × serial wall |")
    print("|---|---:|---:|---:|---:|---:|")
    serial_wall = rows[0][1]["wall"]
    for name, r in rows:
        print(f"| {name} | {r['wall']:.2f} | {r['render']:.2f} | {r['encode']:.2f} | "
              f"{r['wall'] / (r['render'] + r['encode']):.2f} | {r['wall'] / serial_wall:.2f} |")
    print(f"| re-encode (+webp) | {reencode:.2f} | 0 (pipeline calls: {len(calls)}) | | | "
          f"{reencode / serial_wall:.2f} |")


if __name__ == "__main__":
    main()
