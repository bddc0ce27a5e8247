"""Video files through the bundled ffmpeg: mp4 (H.264) and webm (VP9) for posting; prores and ffv1 for
editing. Raw rgb24 frames go over stdin; colour conversion and tags are set explicitly."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from animate.util.atomic import atomic_file
from animate.encode.base import (BT709_TV, MAX_BYTES, Clip, Option, check_choice, choice, encoder, integer,
                                 metadata_args, pad_even, run_ffmpeg)
from animate.encode.targets import check_target, get_target
from animate.encode.fit import prepare_for_target, resolve_budget, scaled, search, target_fps_factor
from animate.encode.base import fit_inside

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
TUNES = (None, "film", "animation", "grain", "stillimage")
FPS_MODES = ("interpolate", "duplicate")
MP4_OPTIONS = {"crf": Option(18, integer(0, 51)), "preset": Option("slow", choice(*PRESETS)),
               "tune": Option(None, choice(*TUNES)), "target": Option(None, check_target),
               "max_bytes": Option(None, MAX_BYTES), "fps_mode": Option("interpolate", choice(*FPS_MODES))}


def mp4_args(crf: int, preset: str, tune: str | None, metadata: str | None) -> list[str]:
    return ["-vf", BT709_TV + ",format=yuv420p", "-c:v", "libx264", "-profile:v", "high",
            "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", preset, *(["-tune", tune] if tune else []),
            "-movflags", "+faststart", *metadata_args(metadata), "-f", "mp4"]


def encode_mp4(frames: np.ndarray, dest: Path, *, fps: float, crf: int = 18, preset: str = "slow",
               tune: str | None = None, metadata: str | None = None) -> None:
    """H.264 High 4:2:0, BT.709 tv-range tags, moov first; odd sizes padded to even."""
    run_ffmpeg(pad_even(frames), fps, mp4_args(crf, preset, tune, metadata), dest, "mp4")


def check_mp4_clip(opts: dict, clip: Clip) -> None:
    """A target's fps and duration limits, known from fps and frame count before any pixel exists."""

    if opts["target"] is not None:
        target_fps_factor(get_target("mp4", opts["target"]), clip.fps, clip.frames, clip.interpolate)


@encoder("mp4", ".mp4", options=MP4_OPTIONS, clip_rule=check_mp4_clip)
def write_mp4(frames, path, *, fps, crf, preset, tune, target, max_bytes, fps_mode, metadata):
    """H.264 MP4 for posting; `target` prepares it for a platform (duration, fps, aspect, bytes)."""

    with atomic_file(path) as tmp:
        report = fit_mp4(frames, tmp, fps=fps, crf=crf, preset=preset, tune=tune, metadata=metadata,
                         target=target, max_bytes=max_bytes, fps_mode=fps_mode)
    return path, report


@encoder("webm", ".webm", options={"crf": Option(32, integer(0, 63))})
def write_webm(frames, path, *, fps, crf, metadata):
    """VP9 WebM in constant-quality mode (-b:v 0), BT.709 tags."""
    args = ["-vf", BT709_TV + ",format=yuv420p", "-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0",
            "-row-mt", "1", "-deadline", "good", "-cpu-used", "2", *metadata_args(metadata), "-f", "webm"]
    with atomic_file(path) as tmp:
        run_ffmpeg(pad_even(frames), fps, args, tmp, "webm")
    return path, {}


# profile → (prores_ks profile, the 10-bit samples prores_ks encodes from, what decoders report). prores_ks
# takes 10-bit input for every profile; FFmpeg's ProRes decoder (ffprobe, PyAV, editors built on it) reports
# 4444 streams as yuv444p12le, the format's full 12-bit precision, and 422 HQ as yuv422p10le.
PRORES = {"hq": ("3", "yuv422p10le", "yuv422p10le"), "4444": ("4", "yuv444p10le", "yuv444p12le")}


def _prores_profile(fmt: str, key: str, value) -> str:
    return check_choice(fmt, key, str(value), tuple(PRORES))  # str: YAML reads 4444 as a number


def _stream_pix_fmt(path) -> str | None:
    """The pixel format the written file's video stream reports (as ffprobe does), read with PyAV."""
    try:
        import av  # media library: loaded on use

        with av.open(str(path)) as container:
            return container.streams.video[0].codec_context.pix_fmt
    except Exception:  # PyAV missing or the probe failing: the file is still fine, the report says unknown
        return None


@encoder("prores", ".mov", options={"profile": Option("hq", _prores_profile)})
def write_prores(frames, path, *, fps, profile, metadata):
    """ProRes in MOV for editors: 422 HQ (profile 3, 4:2:2 from 10-bit samples, reported yuv422p10le) or 4444
    (profile 4, 4:4:4 from 10-bit samples, reported yuv444p12le); the report carries what the file says."""
    code, pix, _ = PRORES[profile]
    args = ["-vf", f"{BT709_TV},format={pix}", "-c:v", "prores_ks", "-profile:v", code, "-vendor", "apl0",
            "-pix_fmt", pix, *metadata_args(metadata), "-f", "mov"]
    frames = pad_even(frames) if profile == "hq" else frames  # 4:2:2 needs an even width
    with atomic_file(path) as tmp:
        run_ffmpeg(frames, fps, args, tmp, "prores")
        reported = _stream_pix_fmt(tmp)
    return path, {"profile": profile, "encoded_from": pix, "pix_fmt": reported}


@encoder("ffv1", ".mkv")
def write_ffv1(frames, path, *, fps, metadata):
    """Lossless FFV1 in Matroska, stored as RGB (bgr0) so decoding returns the exact input frames."""
    args = ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1", "-slices", "4", "-pix_fmt", "bgr0",
            *metadata_args(metadata), "-f", "matroska"]
    with atomic_file(path) as tmp:
        run_ffmpeg(frames, fps, args, tmp, "ffv1")
    return path, {}


def fit_mp4(frames: np.ndarray, dest: Path, *, fps: float, crf: int, preset: str, tune, metadata, target,
            max_bytes, fps_mode: str) -> dict:
    tgt, budget = resolve_budget("mp4", target, max_bytes)
    prepared = []
    if tgt:
        frames, fps, prepared = prepare_for_target(frames, fps, tgt, fps_mode)

    frames = pad_even(frames)  # so the reported size is the encoded one
    _, h, w, _ = frames.shape
    min_fps = tgt.min_fps if tgt and tgt.min_fps else 1
    steps = [k for k in (1, 2, 3) if fps / k >= min_fps - 1e-9 and len(frames) // k >= 1] or [1]

    def attempt(level, scale, step, path):
        clip = scaled(frames, (w, h), scale, step, even=True)
        encode_mp4(clip, path, fps=fps / step, crf=level, preset=preset, tune=tune, metadata=metadata)
        return path.stat().st_size

    levels = (list(range(crf, 41)) or [crf]) if budget else [crf]
    report = search(attempt, dest, budget, levels, steps, "outputs.mp4")
    k = report.pop("frame_step")
    report["crf"] = report.pop("quality")
    report.update(frame_step=k, fps=fps / k, frames=len(frames[::k]),
                  size=list(fit_inside(w, h, None, None, report["scale"], even=True)))
    if prepared:
        report["prepared"] = prepared
    if tgt:
        report["target"] = tgt.name
    return report
