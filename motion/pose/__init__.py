"""Pose sources → one OpenPose-style conditioning image per output frame.

    from motion.pose import pose_frames
    images = pose_frames("poses/dance.mp4", frames=16, fps=8, width=512, height=512)

Kinds (`kind=` picks one; without it the source decides, see `detect_kind`):
  skeleton       skeleton images already drawn: an image, a folder of images, or a video
  openpose-json  OpenPose keypoints: a .json file (one frame or a list) or a folder of *_keypoints.json
  keyframes      a mapping {frame: {keypoint: [x, y]}} written in the script
  person-video   a video of a real person; keypoints extracted with MediaPipe in a separate env
Results are cached under `cache_dir` (default $ANIMATE_CACHE or ~/.cache/animate) by content hash.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError
from motion.pose import cache
from motion.pose.cache import cache_root
from motion.pose.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_images, read_video, video_info

KINDS = ("skeleton", "openpose-json", "keyframes", "person-video")
# A frame counts as a drawn skeleton when most of it is black (skeletons cover ~5-20% of the frame; photos
# and film almost never have half their pixels at pure black).
BLACK_LEVEL = 16
BLACK_SHARE = 0.5

__all__ = ["KINDS", "pose_frames", "pose_keypoints", "frames_to_extract", "count_frames", "detect_kind",
           "looks_like_skeleton"]


def looks_like_skeleton(image: np.ndarray) -> bool:
    """True when an RGB frame is mostly pure black, as drawn skeletons are."""
    return float((image.max(axis=-1) < BLACK_LEVEL).mean()) >= BLACK_SHARE


def detect_kind(source) -> str:
    """The kind of a source: mapping → keyframes; .json or a folder of .json → openpose-json; folder of
    images or an image → skeleton; video → skeleton if its middle frame is mostly black, else person-video."""
    if isinstance(source, dict):
        return "keyframes"
    path = Path(source)
    if not path.exists():
        raise PoseSourceError(f"pose source {source}: does not exist; check the path (relative paths "
                              f"resolve against the script's folder)")
    if path.is_dir():
        has_json = any(path.glob("*.json"))
        has_images = bool(list_images(path))
        if has_json and has_images:
            raise PoseSourceError(f"pose source {source}: holds both .json and image files; "
                                  f"set the pose `kind` to openpose-json or skeleton")
        if has_json:
            return "openpose-json"
        if has_images:
            return "skeleton"
        raise PoseSourceError(f"pose source {source}: no images or .json files in the folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "openpose-json"
    if suffix in IMAGE_SUFFIXES:
        return "skeleton"
    if suffix in VIDEO_SUFFIXES:
        info = video_info(path)
        middle = read_video(path, [max(0, info.frames // 2 - 1)])[0]
        return "skeleton" if looks_like_skeleton(middle) else "person-video"
    raise PoseSourceError(f"pose source {source}: unknown file type {suffix or '(none)'}; give a video, "
                          f"an image folder, OpenPose .json or keyframes, or set the pose `kind`")


def _kind(source, kind: str | None) -> str:
    if kind is None:
        return detect_kind(source)
    if kind not in KINDS:
        raise PoseSourceError(f"pose source {source}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if (kind == "keyframes") != isinstance(source, dict):
        raise PoseSourceError(f"pose source: kind {kind} needs "
                              f"{'a mapping of keyframes' if kind == 'keyframes' else 'a path'}, "
                              f"got {type(source).__name__}")
    if kind != "keyframes" and not Path(source).exists():
        raise PoseSourceError(f"pose source {source}: does not exist; check the path")
    return kind


def _frames_entry(source_hash: str, kind: str, args: dict, opts: dict, cache_dir) -> Path:
    # Any change to this package's code (drawing, fitting, smoothing, the detector worker) re-draws.
    code = cache.code_fingerprint(*Path(__file__).parent.glob("*.py"))
    key = cache.cache_key(source_hash, what="frames", kind=kind, code=code, **args, **opts)
    return cache_root(cache_dir) / "pose" / f"frames-{key}.npz"


def pose_frames(source, *, frames: int, fps: float, width: int, height: int, fit: str = "contain",
                cache_dir=None, kind: str | None = None, **opts) -> list[np.ndarray]:
    """One RGB uint8 (height, width, 3) OpenPose skeleton image per frame from any pose source."""
    from motion.pose.sources import SOURCES

    if frames < 1 or width < 1 or height < 1:
        raise PoseSourceError(f"pose source {source}: frames, width and height must be positive "
                              f"(got {frames}, {width}, {height})")
    kind = _kind(source, kind)
    args = dict(frames=frames, fps=fps, width=width, height=height, fit=fit)
    if kind == "keyframes":  # drawing a few lines is cheaper than hashing and caching them
        return SOURCES[kind](source, **args, **opts)
    source_hash = cache.hash_source(source)
    entry = _frames_entry(source_hash, kind, args, opts, cache_dir)
    cached = cache.load_frames(entry)
    if cached is not None and len(cached) == frames:
        return cached
    if kind == "person-video":
        opts = {**opts, "cache_dir": cache_dir, "source_hash": source_hash}
    images = SOURCES[kind](source, **args, **opts)
    cache.save_frames(entry, images)
    return images


def pose_keypoints(source, *, frames: int, fps: float, width: int, height: int, fit: str = "contain",
                   cache_dir=None, kind: str | None = None, **opts) -> list[np.ndarray]:
    """The keypoints pose_frames draws: one (people, 18, 3) float32 array per frame, x and y in output
    pixels, points below the source's `threshold` set to 0 (missing). Skeleton images have none."""
    from motion.pose.sources import KEYPOINT_SOURCES

    kind = _kind(source, kind)
    if kind not in KEYPOINT_SOURCES:
        raise PoseSourceError(f"pose source {source}: {kind} images hold no keypoints; use OpenPose JSON, "
                              f"keyframes or a person video")
    if kind == "person-video":
        opts = {**opts, "cache_dir": cache_dir}
    poses, threshold = KEYPOINT_SOURCES[kind](source, frames=frames, fps=fps, width=width, height=height,
                                              fit=fit, **opts)
    out = []
    for pose in poses:
        pose = np.array(pose, np.float32, copy=True)
        pose[pose[..., 2] < threshold] = 0.0
        out.append(pose)
    from motion.pose.coverage import check_extent, keypoint_extent
    from motion.pose.sources import SPECK_FIXES

    where = "pose keyframes" if kind == "keyframes" else f"pose source {source}"
    check_extent(keypoint_extent(out, threshold, width, height), where=where, width=width, height=height,
                 fix=SPECK_FIXES[kind])  # the specks pose_frames refuses
    return out


def frames_to_extract(source, *, frames: int, fps: float, width: int, height: int, fit: str = "contain",
                      cache_dir=None, kind: str | None = None, **opts) -> int:
    """How many video frames pose_frames(...) with these arguments would send to the pose detector now:
    0 unless the source is a person video whose drawn frames or keypoints are not cached yet."""
    from motion.pose.extract import frames_to_extract as uncached
    from motion.pose.timing import source_indices

    kind = _kind(source, kind)
    if kind != "person-video":
        return 0
    source_hash = cache.hash_source(source)
    args = dict(frames=frames, fps=fps, width=width, height=height, fit=fit)
    drawn = cache.load_frames(_frames_entry(source_hash, kind, args, opts, cache_dir))
    if drawn is not None and len(drawn) == frames:
        return 0
    info = video_info(Path(source))
    idx = source_indices(frames, fps, info.frames, info.fps, overrun=opts.get("overrun", "error"),
                         where=f"pose source {source}")
    return uncached(source, sorted(set(idx)), cache_dir=cache_dir, complexity=opts.get("complexity", 1),
                    static=not opts.get("track", False), source_hash=source_hash)


def count_frames(source, *, kind: str | None = None) -> int | None:
    """How many frames a source holds (None for keyframes, which fit any length), for preflight checks."""
    from motion.pose import openpose_json

    kind = _kind(source, kind)
    if kind == "keyframes":
        return None
    path = Path(source)
    if kind == "openpose-json":
        if path.is_dir():
            return len(openpose_json.json_files(path))
        return len(openpose_json.load_frames(path))
    if path.is_dir():
        return len(list_images(path))
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return video_info(path).frames
    return 1
