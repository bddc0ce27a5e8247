"""Video-to-video: a source video (or folder of frames) sampled by time and fitted to the clip, the diffusers
video-to-video pipelines built from a clip's loaded stack, the refine pass, and the frame hand-off record.

Sampling: clip frame i is shown at t = start + i / fps (the clip's fps) and takes the source frame on screen at
t: the last one whose timestamp (from the first frame's, PyAV's pts) is at or before t. Variable-frame-rate
videos are read by their real timestamps; a folder of frames runs at `init_video.fps` (default: the clip's fps),
which also overrides a video's own clock when set.
"""
from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from animate.errors import ConfigError
from animate.models.schedulers import check_steps
from animate.rendering.fastpaths import derived_pipeline
from animate.spec.resolved import InitVideo
from animate.rendering.conditioning import Conditioning
from animate.util.hashing import content_hash_or_none

if TYPE_CHECKING:
    from animate.spec import ClipSpec
from motion.pose.fit import fit_image
from motion.pose.media import VIDEO_SUFFIXES, list_images, read_image

# Timestamps within 1 ms count as equal: MKV stores milliseconds, so 12 fps frame 2 (1/6 s) reads 0.167 s and
# must still be on screen at 1/6 s. A quarter of a frame even at 240 fps.
EPSILON_S = 1e-3


@dataclass
class SourceFrames:
    """The frames a clip starts from, one per clip frame, fitted to its size, with where each came from."""

    images: list  # uint8 H×W×3 at the clip's size
    indices: list[int]  # source frame index per clip frame
    times: list[float]  # that source frame's timestamp, seconds from the source's first frame
    size: tuple[int, int]  # the source's (width, height)

    def record(self) -> list[dict]:
        """The sidecar's frame map: output frame → source frame index and timestamp."""
        return [{"frame": i, "source_frame": k, "source_time": round(t, 6)}
                for i, (k, t) in enumerate(zip(self.indices, self.times))]


@dataclass(frozen=True)
class SourceInfo:
    frames: int
    fps: float | None  # frames / duration (None: a folder of frames without an fps)
    width: int
    height: int
    duration: float | None  # seconds, from the first frame's timestamp to the end of the last


def _where(spec, key: str = "source") -> str:
    return f"{spec.script or 'command line'}: clip {spec.name}: init_video.{key}"


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _open(path: Path, where: str):
    import av  # media library: loaded on use

    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises many types (InvalidDataError, FileNotFoundError, ...)
        raise ConfigError(f"cannot read video {str(path)!r} ({type(exc).__name__}: {exc})", where=where,
                          hint="check the file, or re-encode it with `ffmpeg -i IN -c:v libx264 OUT.mp4`") from None
    if not container.streams.video:
        container.close()
        raise ConfigError(f"{str(path)!r} has no video stream", where=where, hint="give a video file")
    return container


def _frame_files(path: Path, where: str) -> list[Path]:
    files = list_images(path)
    if not files:
        raise ConfigError(f"no images (.png, .jpg, .webp) in folder {str(path)!r}", where=where,
                          hint="give a video file or a folder of frames")
    return files


def _video_times(path: Path, where: str) -> tuple[list[float], float, tuple[int, int]]:
    """Every frame's presentation time (seconds from the first, by pts, without decoding), how long the last
    one shows, and the size."""
    container = _open(path, where)
    try:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        base = float(stream.time_base) if stream.time_base else None
        packets = sorted((p.pts, p.duration or 0) for p in container.demux(stream) if p.size and p.pts is not None)
        size = (stream.codec_context.width, stream.codec_context.height)
    except Exception as exc:
        raise ConfigError(f"cannot read video {str(path)!r} ({type(exc).__name__}: {exc})", where=where) from None
    finally:
        container.close()
    if not packets:
        raise ConfigError(f"video {str(path)!r} has no frames", where=where)
    if base is None:
        if not rate:
            raise ConfigError(f"video {str(path)!r} has neither timestamps nor a frame rate", where=where,
                              hint="set init_video.fps")
        return [i / rate for i in range(len(packets))], 1 / rate, size
    times = [(pts - packets[0][0]) * base for pts, _ in packets]
    # The last frame lasts its packet's duration; else as long as the one before it; else 1/rate.
    last = packets[-1][1] * base or (times[-1] - times[-2] if len(times) > 1 else 1 / (rate or 1))
    return times, last, size


def probe(source: str | Path, *, fps: float | None = None, where: str = "init_video.source") -> SourceInfo:
    """Frame count, rate, size and duration of a source video or folder of frames."""
    path = Path(source)
    if path.is_dir():
        files = _frame_files(path, where)

        h, w = read_image(files[0]).shape[:2]
        return SourceInfo(len(files), fps, w, h, len(files) / fps if fps else None)
    if not _is_video(path):
        raise ConfigError(f"{str(path)!r} is not a video file or a folder of frames", where=where,
                          hint="give a .mp4/.mov/.webm/.mkv/.avi/.gif file or a folder of images")
    times, last, (w, h) = _video_times(path, where)
    if fps:
        times, last = [i / fps for i in range(len(times))], 1 / fps
    rate = (len(times) / (times[-1] + last)) if times[-1] + last > 0 else None
    return SourceInfo(len(times), rate, w, h, times[-1] + last)


def clip_times(frames: int, fps: float, start: float) -> list[float]:
    """When each clip frame is shown, in seconds of the source."""
    return [start + i / fps for i in range(frames)]


def pick_frames(source_times: list[float], wanted: list[float]) -> list[int]:
    """For each wanted time, the index of the source frame on screen then (the last at or before it)."""
    return [max(0, bisect.bisect_right(source_times, t + EPSILON_S) - 1) for t in wanted]


def sample(spec) -> SourceFrames:
    """The clip's `frames` source frames at its fps from `init_video.start`, fitted to its size."""
    iv = spec.init_video
    where = _where(spec)
    path = Path(iv.source)
    files = None
    if path.is_dir():
        files = _frame_files(path, where)
        rate = iv.fps or spec.fps
        times = [i / rate for i in range(len(files))]
        end = len(files) / rate
    else:
        info = probe(path, fps=iv.fps, where=where)
        times, _, _ = _video_times(path, where)
        if iv.fps:
            times = [i / iv.fps for i in range(len(times))]
        end = info.duration
    wanted = clip_times(spec.frames, spec.fps, iv.start)
    if wanted[-1] >= end + EPSILON_S:
        raise ConfigError(f"source {str(path)!r} lasts {end:.3f}s but the clip needs {wanted[-1]:.3f}s "
                          f"({spec.frames} frames at {spec.fps:g} fps from {iv.start:g}s)", where=where,
                          hint="use fewer frames, an earlier start, or a longer source")
    indices = pick_frames(times, wanted)
    raw = _read_files(files, indices) if files is not None else _read_video(path, indices, where)
    images = [fit_frame(raw[k], spec.width, spec.height, iv.fit) for k in indices]
    first = next(iter(raw.values()))
    return SourceFrames(images=images, indices=indices, times=[times[k] for k in indices],
                        size=(first.shape[1], first.shape[0]))


def _read_files(files: list[Path], indices: list[int]) -> dict[int, np.ndarray]:
    return {k: read_image(files[k]) for k in sorted(set(indices))}


def _read_video(path: Path, indices: list[int], where: str) -> dict[int, np.ndarray]:
    """Decode once, in presentation order, keeping only the wanted frames as RGB."""
    wanted, last = set(indices), max(indices)
    out: dict[int, np.ndarray] = {}
    container = _open(path, where)
    try:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    except Exception as exc:
        raise ConfigError(f"decoding {str(path)!r} failed ({type(exc).__name__}: {exc})", where=where,
                          hint="re-encode it with `ffmpeg -i IN -c:v libx264 OUT.mp4`") from None
    finally:
        container.close()
    missing = sorted(wanted - out.keys())
    if missing:
        raise ConfigError(f"frame {missing[0]} of {str(path)!r} could not be decoded", where=where,
                          hint="re-encode the video")
    return out


def fit_frame(image: np.ndarray, width: int, height: int, fit: str) -> np.ndarray:
    """contain / cover / stretch as pose sources fit (motion.pose.fit); `pad` keeps the source's pixels 1:1,
    centred, its edge pixels extended where the canvas is larger and cropped where it is smaller."""

    if fit != "pad":
        return fit_image(image, width, height, fit)
    h, w = image.shape[:2]
    top, left = max(0, (height - h) // 2), max(0, (width - w) // 2)
    padded = np.pad(image, ((top, max(0, height - h - top)), (left, max(0, width - w - left)), (0, 0)), mode="edge")
    y0, x0 = (padded.shape[0] - height) // 2, (padded.shape[1] - width) // 2
    return np.ascontiguousarray(padded[y0:y0 + height, x0:x0 + width])


def crop_box(canvas: tuple[int, int], source: tuple[int, int], out: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) in frames of size `out` of a `source`-sized picture padded 1:1 into `canvas`
    (the inverse of fit_frame's pad, scaled when the frames were refined to a larger size)."""
    kx, ky = out[0] / canvas[0], out[1] / canvas[1]
    w, h = min(source[0], canvas[0]), min(source[1], canvas[1])
    x0, y0 = (canvas[0] - w) // 2, (canvas[1] - h) // 2
    return round(x0 * kx), round(y0 * ky), round(w * kx), round(h * ky)


# ---------------------------------------------------------------- checks


def check(spec, label: str) -> None:
    """What the video-to-video pipelines cannot do, refused before anything loads; the source is read
    (timestamps only) so a short or unreadable source is one line now, not after the models load."""
    iv, refine = spec.init_video, spec.refine
    if iv is None and refine is None:
        return
    field = "init_video" if iv is not None else "refine"
    if spec.loop:
        raise ConfigError(f"{field} cannot be combined with loop: true (the video-to-video pipeline starts from "
                          "the source's frames, which do not wrap around)", where=label, hint="set loop: false")
    if iv is not None and spec.free_init:
        raise ConfigError("init_video cannot be combined with free_init (diffusers' video-to-video pipeline "
                          "re-cuts FreeInit's schedule by strength)", where=label, hint="remove free_init")
    if iv is not None and spec.context.noise == "repeat_context":
        raise ConfigError("init_video cannot use context.noise: repeat_context (video-to-video noise is drawn for "
                          "every frame at once, on top of the source)", where=label,
                          hint="leave context.noise unset")
    if iv is not None and not iv.enforce_inference_steps and int(spec.steps * iv.strength) < 1:
        raise ConfigError(f"init_video: steps {spec.steps} × strength {iv.strength:g} runs no denoising step "
                          f"(diffusers runs int(steps × strength))", where=label,
                          hint="raise steps or strength, or set enforce_inference_steps: true")
    if iv is not None and iv.enforce_inference_steps:
        _check_schedule(spec, label)
    if refine is not None and int(refine_size(spec)[0]) > 4096:
        raise ConfigError(f"refine: scale {refine.scale:g} makes the clip wider than 4096 px", where=label,
                          hint="lower refine.scale or the size")
    if iv is not None:
        path = Path(iv.source)
        info = probe(path, fps=iv.fps or (spec.fps if path.is_dir() else None), where=f"{label}: init_video.source")
        need = clip_times(spec.frames, spec.fps, iv.start)[-1]
        if info.duration is not None and need >= info.duration + EPSILON_S:
            raise ConfigError(f"init_video.source {str(path)!r} lasts {info.duration:.3f}s but the clip needs "
                              f"{need:.3f}s ({spec.frames} frames at {spec.fps:g} fps from {iv.start:g}s)",
                              where=label, hint="use fewer frames, an earlier start, or a longer source")


def _check_schedule(spec, label: str) -> None:
    """With enforce_inference_steps diffusers builds an int(steps / strength)-step schedule: the scheduler must
    take that many (LCM stops at its original_inference_steps)."""

    length = int(spec.steps / spec.init_video.strength)
    try:
        check_steps(dataclasses.replace(spec, steps=length), label)
    except ConfigError as exc:
        raise ConfigError(f"init_video: {spec.steps} steps at strength {spec.init_video.strength:g} need a "
                          f"{length}-step schedule, and {exc.message}", where=label,
                          hint="raise strength or lower steps") from None


def denoising_steps(spec) -> int:
    """UNet passes of a video-to-video clip: its steps (enforce_inference_steps) or int(steps × strength)."""
    iv = spec.init_video
    if iv.enforce_inference_steps:
        return spec.steps
    return min(int(spec.steps * iv.strength), spec.steps)


# ---------------------------------------------------------------- pipelines


def video_pipeline(stack_pipe, controlnet, dtype):
    """diffusers' video-to-video pipeline (with the ControlNet when given) sharing the stack's components."""
    import torch  # torch stack: kept out of light commands
    # torch stack: kept out of light commands
    from diffusers import AnimateDiffVideoToVideoControlNetPipeline, AnimateDiffVideoToVideoPipeline

    if controlnet is None:
        pipe = derived_pipeline(AnimateDiffVideoToVideoPipeline, stack_pipe, torch_dtype=dtype)
    else:
        pipe = derived_pipeline(AnimateDiffVideoToVideoControlNetPipeline, stack_pipe, controlnet=controlnet,
                                torch_dtype=dtype)
    # The pipeline encodes the source with the VAE in fp32 only under force_upcast (else in the UNet's dtype,
    # which the fp32 VAE refuses), and casts it back to the UNet's dtype afterwards: after_call undoes that.
    if not pipe.vae.config.force_upcast:
        pipe.vae.register_to_config(force_upcast=True)
    pipe.vae.to(dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def after_call(pipe) -> None:
    """The VAE back in fp32 (diffusers leaves it in the UNet's dtype after encoding the source)."""
    import torch  # torch stack: kept out of light commands

    pipe.vae.to(dtype=torch.float32)


def video_kwargs(kwargs: dict, spec, images: list) -> dict:
    """Text-to-video call kwargs → the video-to-video call's: the source frames, strength and step semantics
    instead of a frame count and noise latents (the source's latents are the start)."""
    from PIL import Image  # media library: loaded on use

    iv = spec.init_video
    out = {k: v for k, v in kwargs.items() if k not in ("num_frames", "latents")}
    out.update(video=[Image.fromarray(im) if isinstance(im, np.ndarray) else im for im in images],
               strength=float(iv.strength), enforce_inference_steps=bool(iv.enforce_inference_steps))
    return out


# ---------------------------------------------------------------- refine


def refine_size(spec) -> tuple[int, int]:
    """scale × the clip's size, to a multiple of 8 (the latents are 1/8 of the pixels)."""
    k = spec.refine.scale
    return max(8, round(spec.width * k / 8) * 8), max(8, round(spec.height * k / 8) * 8)


def refine_spec(spec):
    """The second pass as a clip of its own: video-to-video over the first pass's frames at the larger size."""
    r = spec.refine
    width, height = refine_size(spec)
    enforce = spec.init_video.enforce_inference_steps if spec.init_video else True
    init = InitVideo(source=spec.init_video.source if spec.init_video else "", strength=r.strength, fps=None,
                     start=0.0, fit="stretch", enforce_inference_steps=enforce)
    return dataclasses.replace(spec, width=width, height=height, steps=r.steps or spec.steps, init_video=init,
                               refine=None, free_init=None)


def finish(renderer, spec, result, source: SourceFrames | None, pose_frames, keep_float: bool):
    """After the first pass: the refine pass, the frame map and the crop back to the source's size."""
    info: dict[str, Any] = result.info
    if spec.refine:
        second_spec = refine_spec(spec)
        second_pose = None
        if spec.pose is not None and pose_frames is not None:
            second_pose = [_pil(fit_image(np.asarray(p), second_spec.width, second_spec.height, "stretch"))
                           for p in pose_frames]
        second = renderer.render(second_spec, pose_frames=second_pose, keep_float=keep_float,
                                 init_frames=list(result.frames))
        second_info = {k: v for k, v in second.info.items() if k != "init_video"}  # its source: the first pass
        info = {**second_info, "first_pass": {"width": spec.width, "height": spec.height, "steps": spec.steps,
                                              "timings": result.timings},
                "refine": {**dataclasses.asdict(spec.refine), "steps": second_spec.steps, "width": second_spec.width,
                           "height": second_spec.height,
                           "denoising_steps": denoising_steps(second_spec), "timings": second.timings}}
        timings = {k: round(result.timings.get(k, 0) + second.timings.get(k, 0), 3) for k in result.timings}
        result = dataclasses.replace(second, spec=spec, timings=timings, info=info)
    if spec.init_video:
        info["init_video"] = {"source_size": list(source.size) if source else None,
                              "denoising_steps": denoising_steps(spec)}
        if source is not None:
            info["source_frames"] = source.record()
    if spec.init_video and spec.init_video.fit == "pad" and source is not None:
        h, w = result.frames.shape[1:3]
        x0, y0, cw, ch = crop_box((spec.width, spec.height), source.size, (w, h))
        floats = result.float_frames[:, y0:y0 + ch, x0:x0 + cw] if result.float_frames is not None else None
        frames = np.ascontiguousarray(result.frames[:, y0:y0 + ch, x0:x0 + cw])
        info["cropped_to"] = [cw, ch]
        result = dataclasses.replace(result, frames=frames, float_frames=floats)
    return dataclasses.replace(result, info=info)


def _pil(image: np.ndarray):
    from PIL import Image  # media library: loaded on use

    return Image.fromarray(image)


def check_refine(spec: ClipSpec, label: str) -> None:
    """The refine pass is a video-to-video clip of its own (video_input.refine_spec, with init_video's
    enforce_inference_steps): it must run a denoising step, and its stretched schedule fit the scheduler."""
    import dataclasses

    if spec.refine is None:
        return
    second = refine_spec(spec)
    steps, strength = second.steps, second.init_video.strength
    if not second.init_video.enforce_inference_steps:
        if int(steps * strength) < 1:
            raise ConfigError(f"refine: {steps} steps × strength {strength:g} runs no denoising step (with "
                              "init_video.enforce_inference_steps: false diffusers runs int(steps × strength))",
                              where=label, hint="raise refine.steps or refine.strength, or set "
                                                "init_video.enforce_inference_steps: true")
        return
    length = int(steps / strength)
    try:
        check_steps(dataclasses.replace(second, steps=length), label)
    except ConfigError as exc:
        raise ConfigError(f"refine: {steps} steps at strength {strength:g} need a {length}-step schedule, and "
                          f"{exc.message}", where=label, hint="raise refine.strength or lower refine.steps") from None


class VideoToVideo(Conditioning):
    """`init_video:` (and `refine:`): the clip starts from a source video's frames, sampled by time and fitted
    (AnimateDiffVideoToVideoPipeline, or its ControlNet variant with a pose); a refine pass follows as a second
    video-to-video clip (`finish`)."""

    field = "init_video"

    def active(self, spec) -> bool:  # a refine pass alone is a video-to-video pass after the first
        return spec.init_video is not None or spec.refine is not None

    def check(self, spec, label: str) -> None:
        check(spec, label)
        check_refine(spec, label)

    def key(self, spec, identity: dict) -> None:  # sampled by time from the source's bytes, like a pose video
        if spec.init_video is None:
            return
        source = identity["init_video"]["source"]
        identity["init_video"] = {**identity["init_video"], "source": {"content": content_hash_or_none(source)}}
        identity["fps"] = spec.fps

    def inputs(self, spec) -> SourceFrames | None:
        return sample(spec) if spec.init_video is not None else None

    def pipeline(self, renderer, stack, spec, pipe):
        if spec.init_video is None or spec.keyframes is not None:  # (check refuses keyframes with a video)
            return pipe
        return video_pipeline(stack.pipe, pipe.controlnet if spec.pose is not None else None, renderer.dtype)

    def arguments(self, spec, inputs, kwargs: dict) -> dict:
        if spec.init_video is None:
            return kwargs
        return video_kwargs(kwargs, spec, inputs.images if isinstance(inputs, SourceFrames) else inputs)


VIDEO = VideoToVideo()
