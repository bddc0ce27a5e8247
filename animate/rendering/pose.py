"""Pose guidance: an OpenPose ControlNet steered by a pose source (skeleton frames, a video, OpenPose JSON,
keyframed keypoints or a person video), as one conditioning variant (animate.rendering.conditioning). The source
is read by motion.pose; this module checks it before anything loads, loads the ControlNet once per stack, builds
diffusers' AnimateDiffControlNetPipeline from the stack's components and gives the call its arguments."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from animate.errors import PoseError
from animate.rendering.conditioning import Conditioning
from animate.rendering.fastpaths import derived_pipeline
from animate.rendering.loading import load_control_model
from animate.util.cache import cache_root
from animate.util.hashing import content_hash_or_none, source_identity
from motion.errors import PoseSourceError
from motion.pose import pose_frames

if TYPE_CHECKING:
    from animate.models.sources import Source
    from animate.spec import ClipSpec


POSE_OPTIONS = ("source_fps", "overrun", "canvas", "threshold", "smooth", "complexity")


def pose_cache_dir() -> Path:
    """The one cache folder of drawn pose frames and extracted keypoints (the pose layer keeps them in its
    `pose/` subfolder), shared by `render`, `check` and `animate poses`, so a person video is looked at once."""

    return cache_root()


def pose_arguments(spec: ClipSpec) -> dict:
    """The keyword arguments of motion.pose.pose_frames for a clip's pose (source first)."""
    pose = spec.pose
    options = {k: getattr(pose, k) for k in POSE_OPTIONS if getattr(pose, k) is not None}
    return dict(source=pose.source, frames=spec.frames, fps=spec.fps, width=spec.width, height=spec.height,
                fit=pose.fit, kind=pose.kind, cache_dir=pose_cache_dir(), **options)


def load_pose_frames(spec: ClipSpec) -> list:
    """The pose conditioning images for a clip (cached by the pose layer)."""
    from PIL import Image  # media library: loaded on use

    try:
        args = pose_arguments(spec)
        frames = pose_frames(args.pop("source"), **args)
    except PoseSourceError as exc:
        raise PoseError(str(exc), where=f"{spec.script}: clip {spec.name}: pose.source") from None
    return [Image.fromarray(f) for f in frames]


def check_pose(spec: ClipSpec, label: str) -> None:
    """The pose source as the render reads it, short of drawing or detecting: its kind and options, its keypoints
    (JSON, keyframes) and how its frames map onto the clip's (motion.pose.timing). A source of another length
    without `source_fps`, or too short, is refused here with the render's own line, not after the plan."""
    from motion.errors import PoseSourceError
    from motion.pose import _kind, frames_to_extract
    from motion.pose.coverage import check_extent, keypoint_extent
    from motion.pose.fit import check_fit
    from motion.pose.media import VIDEO_SUFFIXES, list_images, video_info
    from motion.pose.sources import KEYPOINT_SOURCES, SPECK_FIXES, _options
    from motion.pose.timing import source_indices

    args = pose_arguments(spec)
    source, kind, cache_dir = args.pop("source"), args.pop("kind"), args.pop("cache_dir")
    try:
        kind = _kind(source, kind)
        where = "pose keyframes" if kind == "keyframes" else f"pose source {source}"
        if kind in ("keyframes", "openpose-json"):  # keypoints are cheap to read: the render's own code
            poses, threshold = KEYPOINT_SOURCES[kind](source, **args)
            check_extent(keypoint_extent(poses, threshold, spec.width, spec.height), where=where,
                         width=spec.width, height=spec.height, fix=SPECK_FIXES[kind])
            return
        frames, fps = args.pop("frames"), args.pop("fps")
        check_fit(args.pop("fit"), where=where)
        for key in ("width", "height"):
            args.pop(key)
        if kind == "person-video":  # (motion.pose.sources.person_video_points' options)
            _options(args, {"overrun": "error", "threshold": None, "smooth": None, "complexity": None}, where)
            frames_to_extract(source, frames=frames, fps=fps, width=spec.width, height=spec.height,
                              fit=spec.pose.fit, cache_dir=cache_dir, kind=kind, **args)
            return
        o = _options(args, {"source_fps": None, "overrun": "error"}, where)  # (skeleton_frames' options)
        path = Path(source)
        if path.is_dir():
            count, rate = len(list_images(path)), o["source_fps"]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            info = video_info(path)
            count, rate = info.frames, o["source_fps"] or info.fps
        else:
            return  # one image: a still pose for every frame
        if count:
            source_indices(frames, fps, count, rate, overrun=o["overrun"], where=where)
    except PoseSourceError as exc:
        raise PoseError(str(exc), where=f"{label}: pose.source") from None


class PoseControl(Conditioning):
    """`pose:`: an OpenPose ControlNet (AnimateDiffControlNetPipeline; with init_video, the video-to-video
    ControlNet pipeline). A scheduled scale and the loop's frame roll run in the step callback's ControlNet hook."""

    field = "pose"

    def check(self, spec: ClipSpec, label: str) -> None:
        check_pose(spec, label)

    def key(self, spec: ClipSpec, identity: dict) -> None:
        pose = identity["pose"]
        source = pose["source"]  # a file or folder of poses, or keypoints written in the script
        identity["pose"] = {**pose, "controlnet": source_identity(pose["controlnet"]),
                            "source": {"content": content_hash_or_none(source)} if isinstance(source, str) else source}
        identity["fps"] = spec.fps  # a pose video is sampled by time

    def models(self, spec: ClipSpec) -> list[tuple[str, Source]]:
        return [("pose.controlnet", spec.pose.controlnet)]

    def inputs(self, spec: ClipSpec) -> list:
        return load_pose_frames(spec)

    def pipeline(self, renderer, stack, spec: ClipSpec, pipe):
        from diffusers import AnimateDiffControlNetPipeline  # torch stack: kept out of light commands

        # from_pipe casts every component it shares with the stack to its dtype (fp32 unless told): keep the run's
        # dtype, and the VAE in its decode dtype.
        pipe = derived_pipeline(AnimateDiffControlNetPipeline, stack.pipe, controlnet=self.controlnet(renderer, stack,
                                spec), torch_dtype=renderer.dtype)
        pipe.vae.to(dtype=stack.decode_dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @staticmethod
    def controlnet(renderer, stack, spec: ClipSpec):
        """The clip's ControlNet, loaded once per stack."""
        from diffusers import ControlNetModel  # torch stack: kept out of light commands

        src: Source = spec.pose.controlnet
        cn = stack.controlnets.get(src.key())
        if cn is None:
            cn = load_control_model(renderer, stack, ControlNetModel, src, "pose.controlnet", "ControlNet",
                                    fix="use an SD1.5 OpenPose ControlNet")
            renderer.count_load("controlnet")
            stack.controlnets[src.key()] = cn
        return cn

    def arguments(self, spec: ClipSpec, inputs: Any, kwargs: dict) -> dict:
        scale = spec.pose.scale
        # A scheduled scale runs at 1.0 here; the ControlNet hook multiplies in the step's value.
        return {**kwargs, "conditioning_frames": inputs,
                "controlnet_conditioning_scale": 1.0 if isinstance(scale, dict) else float(scale),
                "control_guidance_start": float(spec.pose.start), "control_guidance_end": float(spec.pose.end)}


POSE = PoseControl()
