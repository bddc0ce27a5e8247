"""Pose sources: each turns its input into one RGB skeleton image (height, width, 3) per clip frame.

Every source has the same signature, `f(source, *, frames, fps, width, height, fit, **opts) -> list`,
and rejects options it does not know (a typo must not be silently ignored). The keypoint sources (JSON,
keyframes, person video) first give per-frame keypoints in output pixels (KEYPOINT_SOURCES), then draw them.
Per-frame sources (image folders, JSON) have no clock: with `source_fps` they are resampled by time,
without it their frame count must equal the clip's (a single frame is a still pose for the whole clip).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError
from motion.pose import keyframes as kf
from motion.pose import openpose_json
from motion.pose.coverage import check_extent, image_extent, keypoint_extent
from motion.pose.draw import THRESHOLD, draw_pose
from motion.pose.fit import check_fit, fit_image, fit_points
from motion.pose.media import VIDEO_SUFFIXES, list_images, read_image, read_video, video_info
from motion.pose.smooth import BETA, MIN_CUTOFF, fill_gaps, smooth_track
from motion.pose.timing import source_indices


def _options(opts: dict, known: dict, where: str) -> dict:
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise PoseSourceError(f"{where}: unknown pose option(s) {', '.join(unknown)}; "
                              f"this source takes {', '.join(sorted(known)) or 'no options'}")
    return {**known, **opts}


def fit_track(poses: list[np.ndarray], canvas: tuple[float, float], *, width: int, height: int,
              fit: str) -> list[np.ndarray]:
    """Each frame's keypoints moved from `canvas` onto the output."""
    return [fit_points(p, canvas, width, height, fit) for p in poses]


def skeleton_frames(source, *, frames, fps, width, height, fit="contain", **opts):
    """Skeleton images already drawn: an image, a folder of images, or a video; resampled and fitted."""
    path, where = Path(source), f"pose source {source}"
    o = _options(opts, {"source_fps": None, "overrun": "error"}, where)
    check_fit(fit, where=where)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise PoseSourceError(f"{where}: no images (.png, .jpg, .webp) in the folder")
        idx = source_indices(frames, fps, len(files), o["source_fps"], overrun=o["overrun"], where=where)
        images = {i: read_image(files[i]) for i in set(idx)}
        out = [fit_image(images[i], width, height, fit) for i in idx]
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        info = video_info(path)
        idx = source_indices(frames, fps, info.frames, o["source_fps"] or info.fps, overrun=o["overrun"],
                             where=where)
        out = [fit_image(im, width, height, fit) for im in read_video(path, idx)]
    else:
        image = fit_image(read_image(path), width, height, fit)
        out = [image.copy() for _ in range(frames)]
    check_extent(image_extent(out), where=where, width=width, height=height,
                 fix="draw the skeletons larger (or crop the images to the figure) and render again")
    return out


def openpose_json_points(source, *, frames, fps, width, height, fit="contain", **opts):
    """OpenPose JSON keypoints (a folder of per-frame files or one file with a list of frames)."""
    path, where = Path(source), f"pose source {source}"
    o = _options(opts, {"source_fps": None, "overrun": "error", "canvas": None, "threshold": THRESHOLD},
                 where)
    check_fit(fit, where=where)
    poses, canvas = openpose_json.parse_poses(path)
    idx = source_indices(frames, fps, len(poses), o["source_fps"], overrun=o["overrun"], where=where)
    canvas = tuple(o["canvas"]) if o["canvas"] else canvas
    scale = openpose_json.coordinate_scale(poses)
    if canvas is None:
        if scale == "pixels":
            raise PoseSourceError(f"{where}: keypoints are in pixels but the image size is unknown; "
                                  f"set the pose `canvas: [width, height]` of the video they came from")
        # Fractions of an image of unknown shape: of the output frame itself.
        canvas, fit = (width, height), "stretch"
    # Fractions (--keypoint_scale 3 or 4) become pixels of their image, which is then fitted like any canvas.
    poses = openpose_json.to_pixels(poses, scale, canvas)
    return fit_track([poses[i] for i in idx], canvas, width=width, height=height, fit=fit), o["threshold"]


def keyframe_points(source, *, frames, fps, width, height, fit="contain", **opts):
    """Keypoints written as {frame: {name: [x, y]}} keyframes, interpolated linearly per frame."""
    where = "pose keyframes"
    o = _options(opts, {"canvas": None, "threshold": THRESHOLD}, where)
    check_fit(fit, where=where)
    poses = kf.interpolate(kf.parse_keyframes(source, frames), frames)
    if o["canvas"]:
        return fit_track(poses, tuple(o["canvas"]), width=width, height=height, fit=fit), o["threshold"]
    # Fractions of the output frame: they already are the output's layout, so fit does not apply.
    return [p * np.float32([width, height, 1]) for p in poses], o["threshold"]


def person_track(source, *, indices=None, threshold=THRESHOLD, smooth=True, smooth_min_cutoff=MIN_CUTOFF,
                 smooth_beta=BETA, track=False, complexity=1, cache_dir=None, install_env=True,
                 source_hash=None):
    """The person's keypoints on the frames `indices` (ascending; default all) of `source`, in its pixels:
    detected (cached per frame), gap-filled and, with `smooth`, despiked and smoothed along those frames.
    Returns ((len(indices), 1, 18, 3), the video's fps, (width, height))."""
    from motion.pose.extract import extract_keypoints
    from motion.pose.extract_env import LANDMARK_MODELS, ensure_pose_env, has_model

    where = f"pose source {source}"
    if complexity not in LANDMARK_MODELS:
        raise PoseSourceError(f"{where}: complexity {complexity!r} is not one of 0 (lite), 1 (full), 2 (heavy)")
    if complexity != 1:
        ensure_pose_env(install=install_env)  # an install adds the lite and heavy models
        # Without the model file mediapipe would try to download it from Google at run time: refuse.
        if not has_model(complexity):
            raise PoseSourceError(
                f"{where}: the complexity {complexity} model is not in the pose env; run `python -m "
                f"motion.pose.extract_env install` with the npm registry reachable, or use complexity 1")
    keypoints, fps, canvas = extract_keypoints(
        source, indices=indices, cache_dir=cache_dir, complexity=complexity, static=not track,
        install_env=install_env, source_hash=source_hash)
    if not (keypoints[..., 2] >= threshold).any():
        raise PoseSourceError(f"{where}: no person found in any of the {len(keypoints)} frames looked at; use "
                              f"a video where one person is fully in view, or lower the pose `threshold`")
    keypoints = fill_gaps(keypoints, threshold)
    if smooth:
        # The filters run along the frames used: at the clip's rate when the clip samples the video.
        span = 1 if indices is None or len(indices) < 2 else (indices[-1] - indices[0]) / (len(indices) - 1)
        keypoints = smooth_track(keypoints, fps / max(span, 1e-9), scale=min(canvas),
                                 min_cutoff=smooth_min_cutoff, beta=smooth_beta, threshold=threshold)
    return keypoints, fps, canvas


def person_video_points(source, *, frames, fps, width, height, fit="contain", **opts):
    """A video of a real person: MediaPipe keypoints (separate env, cached) on just the frames the clip
    shows, cleaned (see person_track)."""
    where = f"pose source {source}"
    o = _options(opts, {"overrun": "error", "threshold": THRESHOLD, "smooth": True,
                        "smooth_min_cutoff": MIN_CUTOFF, "smooth_beta": BETA, "track": False,
                        "complexity": 1, "cache_dir": None, "install_env": True, "source_hash": None},
                 where)
    check_fit(fit, where=where)
    info = video_info(Path(source))
    idx = source_indices(frames, fps, info.frames, info.fps, overrun=o.pop("overrun"), where=where)
    used = sorted(set(idx))
    track, _, canvas = person_track(source, indices=used, **o)
    position = {frame: k for k, frame in enumerate(used)}
    return fit_track([track[position[i]] for i in idx], canvas, width=width, height=height,
                     fit=fit), o["threshold"]


# What to do about a source whose skeletons come out specks, per kind.
SPECK_FIXES = {
    "openpose-json": "its keypoints are probably pixels of a larger image than the canvas they were read on: set "
                     "the pose `canvas: [width, height]` to the video they came from (or export them with OpenPose's "
                     "--keypoint_scale 3 or 4, which are read as fractions)",
    "keyframes": "write keyframe points as fractions of the frame (0-1), or set `canvas:` to the pixel size they "
                 "were written for",
    "person-video": "use a video where the person fills more of the frame",
}


def drawn(points_source, fix: str = "check the source's coordinates"):
    """A keypoint source turned into one that returns skeleton images (refusing specks, see coverage)."""
    def frames_source(source, *, frames, fps, width, height, fit="contain", **opts):
        poses, threshold = points_source(source, frames=frames, fps=fps, width=width, height=height,
                                         fit=fit, **opts)
        where = "pose keyframes" if isinstance(source, dict) else f"pose source {source}"
        check_extent(keypoint_extent(poses, threshold, width, height), where=where, width=width, height=height,
                     fix=fix)
        return [draw_pose(p, width, height, threshold=threshold) for p in poses]

    frames_source.__doc__ = points_source.__doc__
    return frames_source


# Sources that produce keypoints: each returns (per-frame (people, 18, 3) arrays in output pixels,
# the confidence threshold below which a point is not drawn).
KEYPOINT_SOURCES = {
    "openpose-json": openpose_json_points,
    "keyframes": keyframe_points,
    "person-video": person_video_points,
}

SOURCES = {"skeleton": skeleton_frames,
           **{kind: drawn(f, SPECK_FIXES[kind]) for kind, f in KEYPOINT_SOURCES.items()}}
