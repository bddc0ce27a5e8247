"""GIF: one palette for the whole clip, Floyd–Steinberg dithering, unchanged pixels reused across frames.

Why not Pillow/imageio defaults: per-frame median-cut palettes band and cost 2.5–3× the bytes on loops.
Our path: a k-means-refined palette from all frames, error diffusion onto it, then pixels whose
*blurred* change is below a threshold stay transparent (the previous frame shows through), so static
areas cost nothing and dither noise does not crawl. Measured in benchmarks/README.md.
"""
from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from animate.util.atomic import atomic_file
from animate.encode.base import (MAX_BYTES, Clip, Option, boolean, check_choice, encoder, ffmpeg_exe, integer,
                                 rate_text, raw_bytes, shown)
from animate.encode.targets import check_target, get_target
from animate.errors import EncodeError
from animate.encode.fit import resolve_budget, scaled, search, target_box
from animate.encode.base import fit_inside
from animate.util.cpus import usable_cpus
import os
from concurrent.futures import ThreadPoolExecutor

DEFAULT_QUALITY = 85
TRANSPARENT = 255  # palette slot reserved for "keep the previous pixel"
MAX_FPS = 50  # delays are whole centiseconds and players treat < 2 cs as 10 cs
MAX_DELAY_CS = MAX_SIDE = 65535  # delays, width and height are 16-bit fields
ENGINES = ("animate", "gifski")


def check_gif_fps(fps: float, interpolate: int = 1) -> None:
    """A GIF plays at most 50 fps and shows a frame at most 655.35 s; `interpolate` names where fps came from."""
    if 100 / fps < 2:
        key = "interpolate" if interpolate > 1 and fps / interpolate <= MAX_FPS else "fps"
        raise EncodeError(f"GIF cannot play faster than 50 fps (delays ≥ 2 cs), got fps {rate_text(fps, interpolate)}",
                          where=f"outputs.gif.{key}",
                          hint="keep fps × interpolate ≤ 50 or use an mp4/webm output" if key == "interpolate"
                          else "use fps ≤ 50 or an mp4/webm output")
    if 100 / fps > MAX_DELAY_CS:
        raise EncodeError(f"GIF cannot hold a frame longer than {MAX_DELAY_CS / 100:g} s, got fps {fps:g}",
                          where="outputs.gif.fps", hint=f"use fps ≥ {math.ceil(1e4 * 100 / MAX_DELAY_CS) / 1e4:g}")


def gifski_exe() -> str:
    exe = shutil.which("gifski")
    if not exe:
        raise EncodeError("engine 'gifski' needs the gifski program on PATH", where="outputs.gif.engine",
                          hint="install gifski or use engine: animate")
    return exe


def _engine(fmt: str, key: str, value) -> str:
    if check_choice(fmt, key, value, ENGINES) == "gifski":
        gifski_exe()
    return value


def _loop(fmt: str, key: str, value) -> int | None:
    """0 loops forever, n plays n more times, false/null plays once (no NETSCAPE extension)."""
    if value is False or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 65535:
        raise EncodeError(f"option {key!r} must be an integer in [0, 65535] (0 = forever) or false (play once), "
                          f"got {shown(value)}", where=f"outputs.{fmt}.{key}")
    return int(value)


OPTIONS = {"quality": Option(DEFAULT_QUALITY, integer(1, 100)), "loop": Option(0, _loop),
           "pingpong": Option(False, boolean), "denoise": Option(False, boolean),
           "engine": Option("animate", _engine), "target": Option(None, check_target),
           "max_bytes": Option(None, MAX_BYTES)}


def check_gif_clip(opts: dict, clip: Clip) -> None:
    """What a GIF refuses knowing only the clip's fps and size: rates and 16-bit sizes."""

    check_gif_fps(clip.fps, clip.interpolate)
    w, h = target_box(clip.width, clip.height, get_target("gif", opts["target"]) if opts["target"] else None)
    if max(w, h) > MAX_SIDE:
        raise EncodeError(f"GIF frames are at most {MAX_SIDE}×{MAX_SIDE} pixels, got {w}×{h}",
                          where=f"outputs.gif.{'width' if w > MAX_SIDE else 'height'}",
                          hint="render smaller or use a gif target that shrinks it (x: 1280×1080)")


def centisecond_delays(n: int, fps: float) -> list[int]:
    """Per-frame delays in 1/100 s whose running sum tracks i/fps exactly (12 fps → 8,8,9,8,8,9...)."""
    check_gif_fps(fps)
    ends = [round((i + 1) * 100 / fps) for i in range(n)]
    delays = [b - a for a, b in zip([0] + ends[:-1], ends)]
    return [max(2, d) for d in delays]


def quality_params(quality: int) -> tuple[int, float, float]:
    """quality 1–100 → (palette colours, mean-change threshold, per-pixel change threshold)."""
    colors = min(255, round(16 + 240 * quality / 100))
    t_mean = 1.5 + 10 * (1 - quality / 100)
    return colors, t_mean, 6 * t_mean - 2


PALETTEGEN_PIXELS = 1 << 20  # at most this many pixels, as one 1024×1024 image, go to palettegen


def palettegen_input(frames: np.ndarray) -> np.ndarray:
    """What ffmpeg's median cut sees: at most PALETTEGEN_PIXELS of the clip's pixels (every k-th, in clip order)
    at 6 bits a channel (each value at the middle of its 4-level bin). palettegen's time grows with the distinct
    colours it counts: a generated 16-frame 512² clip has millions (8.7 s of palettegen), this at most 262 144
    (0.5 s). The k-means refinement below still runs on full-precision pixels; on the benchmark corpus (and the
    same clips with film grain) the GIFs came out within ±0.2 dB blurPSNR and ±0.6 % of the bytes."""
    if frames.shape[0] * frames.shape[1] * frames.shape[2] <= PALETTEGEN_PIXELS:
        return (frames & 0xFC) | 0x02
    pixels = frames.reshape(-1, 3)
    pixels = pixels[:: -(-len(pixels) // PALETTEGEN_PIXELS)]
    pixels = pixels[: len(pixels) // 1024 * 1024]  # whole rows of a 1024-wide image
    return ((pixels & 0xFC) | 0x02).reshape(1, -1, 1024, 3)


def build_palette(frames: np.ndarray, colors: int, iters: int = 6) -> np.ndarray:
    """ffmpeg palettegen (median cut over a sample of the clip) refined by k-means on a fixed pixel sample."""
    seen = palettegen_input(frames)
    _, h, w, _ = seen.shape
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-",
           "-vf", f"palettegen=max_colors={max(colors, 4)}:reserve_transparent=0:stats_mode=full",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, input=raw_bytes(seen), capture_output=True, start_new_session=True)
    if out.returncode != 0:
        raise EncodeError(f"ffmpeg palettegen failed: {out.stderr.decode(errors='replace')[-200:]}",
                          where="encode gif")
    seed = np.frombuffer(out.stdout, np.uint8).reshape(-1, 3)[:colors].astype(np.float32)
    pixels = frames.reshape(-1, 3)
    rng = np.random.default_rng(0)  # fixed sample: same clip, same palette, same bytes
    sample = pixels[rng.choice(len(pixels), min(len(pixels), 100_000), replace=False)].astype(np.float32)
    pal = seed.copy()
    for _ in range(iters):
        labels = _nearest(sample, pal)
        counts = np.bincount(labels, minlength=len(pal))
        used = counts > 0
        for c in range(3):
            sums = np.bincount(labels, weights=sample[:, c], minlength=len(pal))
            pal[used, c] = sums[used] / counts[used]
    return np.clip(np.round(pal), 0, 255).astype(np.uint8)


def _nearest(points: np.ndarray, pal: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    pn = (pal ** 2).sum(1)
    out = np.empty(len(points), np.int64)

    def one(i: int) -> None:
        # pn - 2·p·palᵀ computed in place: ×(−2) and adding are exact rearrangements, so the same bits as
        # `pn - 2 * (p @ pal.T)` with one temporary instead of three
        d = points[i:i + chunk] @ pal.T
        d *= -2
        d += pn
        out[i:i + chunk] = np.argmin(d, axis=1)

    parallel_map(one, range(0, len(points), chunk))  # fixed chunk bounds: the same result on any core count
    return out


def encode_threads() -> int:
    """Threads for the per-frame work (Pillow's dithering and numpy release the GIL): ANIMATE_ENCODE_THREADS,
    else half the usable CPUs, up to 8 (the rest run the denoiser and the other encoders; on 2 cores the pool
    measured 1.13–1.22× slower than one thread, so there it is one)."""

    wanted = os.environ.get("ANIMATE_ENCODE_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)

    return max(1, min(8, usable_cpus() // 2))


def parallel_map(fn, items) -> list:
    """fn over items in order, on a thread pool when there is more than one thread and item."""
    items = list(items)
    threads = min(encode_threads(), len(items))
    if threads <= 1:
        return [fn(x) for x in items]

    with ThreadPoolExecutor(threads, thread_name_prefix="gif") as pool:
        return list(pool.map(fn, items))


def _dither(frame: np.ndarray, pal_image, n: int) -> np.ndarray:
    from PIL import Image  # media library: loaded on use

    ind = np.array(Image.fromarray(frame).quantize(palette=pal_image, dither=Image.Dither.FLOYDSTEINBERG))
    ind[ind >= n] = 0  # padding slots repeat colour 0
    return ind


def temporal_denoise(frames: np.ndarray, threshold: int = 6) -> np.ndarray:
    """3-frame temporal median where the neighbours agree: removes render flicker, keeps motion."""
    if len(frames) < 3:
        return frames
    out = frames.copy()
    a, b, c = frames[:-2].astype(np.int16), frames[1:-1].astype(np.int16), frames[2:].astype(np.int16)
    med = np.median(np.stack([a, b, c]), axis=0)
    still = (np.abs(a - c).max(-1, keepdims=True) <= threshold)
    out[1:-1] = np.where(still, med, b).astype(np.uint8)
    return out


def quantize_clip(frames: np.ndarray, quality: int):
    """Frames → (palette, [(index array, (x, y))]) with reused pixels set to TRANSPARENT and cropped."""
    import cv2  # media library: loaded on use
    from PIL import Image  # media library: loaded on use

    colors, t_mean, t_local = quality_params(quality)
    pal = build_palette(frames, colors)
    full = np.zeros((256, 3), np.uint8)
    full[:] = pal[0]
    full[:len(pal)] = pal
    pal_image = Image.new("P", (1, 1))
    pal_image.putpalette(full.tobytes())
    shown = None
    parts = []
    # Dithering is per frame (the reuse pass below depends on the previous frame and stays in order).
    for frame, ind in zip(frames, parallel_map(lambda f: _dither(f, pal_image, len(pal)), frames)):
        if shown is None:
            shown = full[ind]
            parts.append((ind, (0, 0)))
            continue
        err = frame.astype(np.float32) - shown.astype(np.float32)
        # Keep a pixel when its own change is modest and the local mean change (what the eye and a
        # σ=1 blur see) is tiny; dithering noise then stays put instead of crawling every frame.
        keep = (np.abs(err).max(-1) <= t_local) & \
               (np.abs(cv2.GaussianBlur(err, (0, 0), 1.0)).max(-1) <= t_mean)
        new = full[ind]
        keep |= (new == shown).all(-1)
        shown = np.where(keep[..., None], shown, new)
        ind[keep] = TRANSPARENT
        ys, xs = np.nonzero(~keep)
        if len(ys) == 0:  # nothing changed: a 1×1 transparent patch still carries the delay
            parts.append((np.full((1, 1), TRANSPARENT, np.uint8), (0, 0)))
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        parts.append((np.ascontiguousarray(ind[y0:y1, x0:x1]), (int(x0), int(y0))))
    full[TRANSPARENT] = 0
    return full, parts


def _lzw(indices: np.ndarray) -> bytes:
    """LZW-compressed image data sub-blocks, produced by Pillow's C GIF encoder."""
    from PIL import Image, ImageFile  # media library: loaded on use

    im = Image.fromarray(indices, "L")
    buf = io.BytesIO()
    tile_type = getattr(ImageFile, "_Tile", None)  # Pillow ≥ 11 wants a _Tile; older takes a tuple
    tile = ("gif", (0, 0, *im.size), 0, "L")
    ImageFile._save(im, buf, [tile_type(*tile) if tile_type else tile])
    return buf.getvalue()


def write_gif_file(dest: Path, size: tuple[int, int], palette: np.ndarray, parts, delays: list[int],
                   loop: int | None, comment: str | None) -> None:
    """Assemble GIF89a: global palette, NETSCAPE loop, comment, then per-frame GCE + image."""
    w, h = size
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette.astype(np.uint8).tobytes()
    if loop is not None:
        out += b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00"
    if comment:
        data = comment.encode("utf-8")
        out += b"!\xfe" + b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255]
                                   for i in range(0, len(data), 255)) + b"\x00"
    images = parallel_map(_lzw, [ind for ind, _ in parts])
    for i, ((ind, (x, y)), delay, image) in enumerate(zip(parts, delays, images)):
        transparent = i > 0
        flags = (1 << 2) | (1 if transparent else 0)  # disposal 1: leave the frame for the next one
        out += b"!\xf9\x04" + struct.pack("<BHB", flags, delay, TRANSPARENT if transparent else 0) + b"\x00"
        out += b"," + struct.pack("<HHHHB", x, y, ind.shape[1], ind.shape[0], 0) + b"\x08"
        out += image + b"\x00"
    out += b";"
    dest.write_bytes(bytes(out))


def _gifski(frames, fps, dest: Path, quality: int, loop) -> None:
    exe = gifski_exe()
    from PIL import Image  # media library: loaded on use

    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for i, f in enumerate(frames):
            names.append(str(Path(tmp) / f"f{i:05d}.png"))
            Image.fromarray(f).save(names[-1], compress_level=1)
        cmd = [exe, "--quiet", "--fps", f"{fps:g}", "--quality", str(quality), "-o", str(dest), *names]
        if loop is None:
            cmd[1:1] = ["--once"]
        proc = subprocess.run(cmd, capture_output=True, start_new_session=True)
        if proc.returncode != 0:
            raise EncodeError(f"gifski failed: {proc.stderr.decode(errors='replace')[-200:]}", where="encode gif")


def encode_gif(frames: np.ndarray, dest: Path, *, fps: float, quality: int = DEFAULT_QUALITY,
               loop: int | None = 0, metadata: str | None = None, engine: str = "animate") -> None:
    """Write one GIF of `frames` at `fps` (no fitting) straight to `dest`."""
    _, h, w, _ = frames.shape
    if engine == "gifski":
        _gifski(frames, fps, dest, quality, loop)
        return
    palette, parts = quantize_clip(frames, quality)
    write_gif_file(dest, (w, h), palette, parts, centisecond_delays(len(frames), fps), loop, metadata)


@encoder("gif", ".gif", options=OPTIONS, clip_rule=check_gif_clip)
def write(frames, path, *, fps, quality, loop, pingpong, denoise, engine, target, max_bytes, metadata):
    """Animated GIF with a clip-wide palette; `target`/`max_bytes` fit a platform's size limit."""

    if pingpong and len(frames) > 2:
        frames = np.concatenate([frames, frames[-2:0:-1]])  # there and back, without doubled ends
    if denoise:
        frames = temporal_denoise(frames)
    with atomic_file(path) as tmp:
        report = fit_gif(frames, tmp, fps=fps, quality=quality, loop=loop, metadata=metadata, engine=engine,
                         target=target, max_bytes=max_bytes)
    return path, report


def fit_gif(frames: np.ndarray, dest: Path, *, fps: float, quality: int, loop, metadata, engine,
            target, max_bytes) -> dict:
    tgt, budget = resolve_budget("gif", target, max_bytes)
    _, h, w, _ = frames.shape
    base = target_box(w, h, tgt)
    steps = [k for k in (1, 2, 3, 4) if fps / k >= 4 and len(frames) // k >= 2] or [1]

    def attempt(q, scale, step, path):
        clip = scaled(frames, base, scale, step, even=False)
        encode_gif(clip, path, fps=fps / step, quality=q, loop=loop, metadata=metadata, engine=engine)
        return path.stat().st_size

    levels = (list(range(quality, 19, -5)) or [quality]) if budget else [quality]
    report = search(attempt, dest, budget, levels, steps, "outputs.gif")
    k = report["frame_step"]
    report.update(size=list(fit_inside(*base, None, None, report["scale"])), fps=fps / k,
                  frames=len(frames[::k]))
    if tgt:
        report["target"] = tgt.name
    return report
