"""GIF benchmark: our default GIF vs ffmpeg's two-pass palettegen/paletteuse defaults vs Pillow's default.

Same RGB frames and delays to every encoder, loop forever; every file decoded by one reference decoder
(Pillow, which applies disposal and transparency). Reports bytes, PSNR, blurPSNR (PSNR after a σ=1
Gaussian blur, which forgives dithering as the eye does), temporal flicker (mean |Δdecoded| where the source
does not change) and median encode time.

    python -m benchmarks.gif_bench            # full corpus (~1–2 min on 2 cores)
    python -m benchmarks.gif_bench --quick    # small frames, a few seconds
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/gif_bench.py` works too

FPS = 10  # 10 cs per frame: every encoder can represent it exactly


def encode_ours(frames, path):
    from animate.encode import encode

    encode("gif", frames, path, fps=FPS)


def encode_ffmpeg(frames, path):
    """ffmpeg's documented two-pass recipe with every option at its default."""
    from animate.encode.base import ffmpeg_exe

    _, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(FPS), "-i", "-", "-filter_complex", "split[a][b];[a]palettegen[p];[b][p]paletteuse",
           "-loop", "0", str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def encode_pillow(frames, path):
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // FPS, loop=0)


ENCODERS = {"animate": encode_ours, "ffmpeg": encode_ffmpeg, "pillow": encode_pillow}


def decode_gif(path) -> tuple[np.ndarray, list[int]]:
    from PIL import Image

    frames, durations = [], []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info.get("duration", 0))
    return np.stack(frames), durations


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def blur(frames):
    import cv2

    return np.stack([cv2.GaussianBlur(f.astype(np.float32), (0, 0), 1.0) for f in frames])


def flicker(src, dec) -> float:
    """Mean |Δ decoded| over pixels whose source did not change between frames (dither crawl)."""
    ds = np.abs(np.diff(src.astype(np.int16), axis=0)).max(-1)
    dd = np.abs(np.diff(dec.astype(np.int16), axis=0)).mean(-1)
    still = ds < 1
    return float(dd[still].mean()) if still.any() else 0.0


def measure(name, frames, encoders=ENCODERS, runs=3) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for enc, fn in encoders.items():
            path = Path(tmp) / f"{name}-{enc}.gif"
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                fn(frames, path)
                times.append(time.perf_counter() - t)
            dec, durations = decode_gif(path)
            assert len(dec) == len(frames), f"{enc}: {len(dec)} frames decoded, {len(frames)} written"
            assert sum(durations) == len(frames) * 1000 // FPS, f"{enc}: duration {sum(durations)} ms"
            out[enc] = {"bytes": path.stat().st_size, "psnr": psnr(frames, dec),
                        "blur_psnr": psnr(blur(frames), blur(dec)), "flicker": flicker(frames, dec),
                        "seconds": statistics.median(times)}
    return out


def run(quick: bool = False) -> dict[str, dict]:
    from benchmarks.corpus import corpus

    clips = corpus(scale=0.35, frames=8) if quick else corpus()
    return {name: measure(name, frames, runs=1 if quick else 3) for name, frames in clips.items()}


def table(results: dict[str, dict]) -> str:
    lines = ["| clip | encoder | kB | × ffmpeg bytes | PSNR | blurPSNR | Δ blurPSNR | flicker | encode s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    totals = {}
    for clip, res in results.items():
        ref = res["ffmpeg"]
        for enc, m in res.items():
            t = totals.setdefault(enc, {"bytes": 0, "blur": [], "seconds": 0.0})
            t["bytes"] += m["bytes"]
            t["blur"].append(m["blur_psnr"])
            t["seconds"] += m["seconds"]
            lines.append(f"| {clip} | {enc} | {m['bytes'] / 1000:.0f} | {m['bytes'] / ref['bytes']:.2f} | "
                         f"{m['psnr']:.2f} | {m['blur_psnr']:.2f} | {m['blur_psnr'] - ref['blur_psnr']:+.2f} | "
                         f"{m['flicker']:.2f} | {m['seconds']:.2f} |")
    ref = totals["ffmpeg"]
    lines.append("")
    lines.append("| all clips | kB | × ffmpeg bytes | mean blurPSNR | Δ vs ffmpeg | encode s |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for enc, t in totals.items():
        mb, rb = statistics.mean(t["blur"]), statistics.mean(ref["blur"])
        lines.append(f"| {enc} | {t['bytes'] / 1000:.0f} | {t['bytes'] / ref['bytes']:.2f} | {mb:.2f} | "
                     f"{mb - rb:+.2f} | {t['seconds']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small frames, one run each")
    args = parser.parse_args(argv)
    print(table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
