"""Long-clip benchmark: peak RSS and time of one `animate render` (denoise, chunked decode, frame store, MP4 and
GIF encoders, gallery preview) at 16, 64, 256 and 1024 frames, each in a fresh process.

    python -m benchmarks.longclip_bench [--quick] [--models tiny,wide] [--frames 16,64,256,1024]
                                        [--steps 1] [--compare-motion]

Models: `tiny` is the offline kit (animate.models.tiny) at 64x64, whose VAE downsamples 8x as every SD model's does (a
latent frame is 1/12 of its pixels' bytes); `wide` is a random SD1.5-shaped model with 4-8x the channels
(benchmarks.render_bench.build_small, built into a temp folder) at 32x32, where the UNet's activations are far
larger than its weights. Peak RSS is the child's own high-water mark (os.wait4), so every row starts from nothing.
The acceptance line of issue 10: RSS(1024) - RSS(256) at most 1.25x the 768 extra frames' own uint8 bytes. Clips
from 128 frames blend their context windows on the UNet's output (`context.blend: auto`); `--compare-motion` also
runs every size with `blend: motion` (diffusers' FreeNoise, split inference from 64 frames), to show what the UNet
blend buys.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACCEPT = 1.25  # RSS growth 256 → 1024 frames over the frames' own bytes


def child(args) -> None:
    """Runs in the measured process: one render through the CLI."""
    import torch

    torch.set_num_threads(1)
    from animate.cli import main

    sys.argv = ["animate", "render", args.script, "--out", args.out, "--quiet"]
    main(standalone_mode=True)


def script_text(model: dict, frames: int, size: int, steps: int, blend: str | None) -> str:
    clip = {"name": "long", "prompt": "a lighthouse in a storm", "frames": frames, "seed": 7}
    if blend:
        clip["context"] = {"blend": blend}
    defaults = {**model, "steps": steps, "width": size, "height": size, "outputs": ["mp4", "gif"]}
    return json.dumps({"version": 1, "defaults": defaults, "clips": [clip]})


def measure(model: dict, frames: int, size: int, steps: int, blend: str | None, work: Path) -> dict:
    folder = Path(tempfile.mkdtemp(dir=work))
    script = folder / "long.json"
    script.write_text(script_text(model, frames, size, steps, blend))
    cmd = [sys.executable, "-m", "benchmarks.longclip_bench", "--child", "--script", str(script),
           "--out", str(folder / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"render of {frames} frames failed (status {status}): {err.strip()[-400:]}")
    sidecars = [p for p in (folder / "out").rglob("*.json") if "timings" in p.read_text()]
    record = json.loads(sidecars[0].read_text()) if sidecars else {}
    info = record.get("info", {})
    timings = record.get("timings", {})
    split = (info.get("split_inference") or {}).get("spatial_split_size") or "off"
    blend = info.get("context", {}).get("blend", "motion")
    return {"frames": frames, "rss_mb": usage.ru_maxrss / 1024, "wall_s": wall, "denoise_s": timings.get("denoise_s"),
            "decode_s": timings.get("decode_s"), "split": split, "blend": blend,
            "windows": len(info.get("context", {}).get("windows", []))}


def models(names: list[str], work: Path) -> dict[str, tuple[dict, int, str]]:
    out = {}
    for name in names:
        if name == "tiny":
            from animate.models.tiny import ensure_kit

            ensure_kit()
            out[name] = ({"preset": "tiny"}, 64, "offline tiny kit (UNet channels 8, VAE x8 → 8x8 latents)")
        elif name == "wide":
            from benchmarks.render_bench import build_small

            kit = build_small(work / "wide")
            out[name] = ({"model": kit.model, "motion_adapter": kit.motion, "scheduler": "lcm", "guidance": 1.0},
                         32, "random SD1.5-shaped UNet channels (32, 64), VAE x2 → 16x16 latents")
        else:
            raise SystemExit(f"unknown model {name!r}; use tiny or wide")
    return out


def report(name: str, about: str, size: int, rows: list[dict], compare: list[dict]) -> bool | None:
    frame_bytes = size * size * 3
    print(f"\n{name}: {about}, {size}x{size}")
    print("| frames | blend | split (motion-module pixels) | peak RSS MB | wall s | denoise s | decode s | "
          "frames' own MB |" + (" RSS with blend: motion MB |" if compare else ""))
    print("|---:|:---:|:---:|---:|---:|---:|---:|---:|" + ("---:|" if compare else ""))
    for i, row in enumerate(rows):
        extra = f" {compare[i]['rss_mb']:.0f} |" if compare else ""
        print(f"| {row['frames']} | {row['blend']} | {row['split']} | {row['rss_mb']:.0f} | {row['wall_s']:.1f} | "
              f"{row['denoise_s']} | {row['decode_s']} | {row['frames'] * frame_bytes / 2**20:.1f} |{extra}")
    by = {r["frames"]: r for r in rows}
    if 256 in by and 1024 in by:
        grown = (by[1024]["rss_mb"] - by[256]["rss_mb"]) * 2**20
        own = (1024 - 256) * frame_bytes
        ratio = grown / own
        ok = ratio <= ACCEPT
        print(f"RSS growth 256→1024: {grown / 2**20:.1f} MB = {ratio:.2f}x the 768 frames' own {own / 2**20:.1f} MB "
              f"(bound {ACCEPT}x): {'PASS' if ok else 'FAIL'}")
        per_frame = grown / 768
        print(f"  per added frame: {per_frame / 1024:.1f} KiB (its uint8 pixels {frame_bytes / 1024:.1f} KiB)")
        return ok
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--script", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="tiny kit only, 16/64/256 frames at 32x32")
    ap.add_argument("--models", default="tiny,wide")
    ap.add_argument("--frames", default="16,64,256,1024")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--compare-motion", action="store_true",
                    help="run every size blended in the motion modules too (diffusers' FreeNoise)")
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    names = ["tiny"] if args.quick else args.models.split(",")
    counts = [16, 64, 256] if args.quick else [int(n) for n in args.frames.split(",")]
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="longclip-bench-") as tmp:
        work = Path(tmp)
        for name, (model, size, about) in models(names, work).items():
            size = 32 if args.quick else size
            rows = []
            for n in counts:
                rows.append(measure(model, n, size, args.steps, None, work))
                print(f"  measured {name} {n} frames: {json.dumps(rows[-1])}", flush=True)
            compare = ([measure(model, n, size, args.steps, "motion", work) for n in counts]
                       if args.compare_motion else [])
            verdicts.append(report(name, about, size, rows, compare))
    print(f"\n{args.steps} denoising step(s), LCM, guidance 1.0, outputs mp4 + gif + preview; "
          f"{os.cpu_count()} CPU cores (shared), torch threads 1")
    return 1 if any(v is False for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
