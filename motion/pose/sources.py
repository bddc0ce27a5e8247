"""Pose sources: each turns its input into one RGB skeleton image (height, width, 3) per clip frame.

Every source has the same signature, `f(source, *, frames, fps, width, height, fit, **opts) -> list`,
and rejects options it does not know (a typo must not be silently ignored).
Per-frame sources (image folders, JSON) have no clock: with `source_fps` they are resampled by time,
without it their frame count must equal the clip's (a single frame is a still pose for the whole clip).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError
from motion.pose import keyframes as kf
from motion.pose import openpose_json
from motion.pose.draw import THRESHOLD, draw_pose
from motion.pose.fit import check_fit, fit_image, fit_points
from motion.pose.media import VIDEO_SUFFIXES, list_images, read_image, read_video, video_info
from motion.pose.smooth import BETA, MIN_CUTOFF, fill_gaps, one_euro
from motion.pose.timing import source_indices


def _options(opts: dict, known: dict, where: str) -> dict:
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise PoseSourceError(f"{where}: unknown pose option(s) {', '.join(unknown)}; "
                              f"this source takes {', '.join(sorted(known)) or 'no options'}")
    return {**known, **opts}


def draw_track(poses: list[np.ndarray], canvas: tuple[float, float], *, width: int, height: int,
               fit: str, threshold: float) -> list[np.ndarray]:
    """Fit each frame's keypoints from `canvas` onto the output and draw them."""
    return [draw_pose(fit_points(p, canvas, width, height, fit), width, height, threshold=threshold)
            for p in poses]


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
        return [fit_image(images[i], width, height, fit) for i in idx]
    if path.suffix.lower() in VIDEO_SUFFIXES:
        info = video_info(path)
        idx = source_indices(frames, fps, info.frames, o["source_fps"] or info.fps, overrun=o["overrun"],
                             where=where)
        return [fit_image(im, width, height, fit) for im in read_video(path, idx)]
    image = fit_image(read_image(path), width, height, fit)
    return [image.copy() for _ in range(frames)]


def openpose_json_frames(source, *, frames, fps, width, height, fit="contain", **opts):
    """OpenPose JSON keypoints (a folder of per-frame files or one file with a list of frames), drawn."""
    path, where = Path(source), f"pose source {source}"
    o = _options(opts, {"source_fps": None, "overrun": "error", "canvas": None, "threshold": THRESHOLD},
                 where)
    check_fit(fit, where=where)
    poses, canvas = openpose_json.parse_poses(path)
    idx = source_indices(frames, fps, len(poses), o["source_fps"], overrun=o["overrun"], where=where)
    canvas = tuple(o["canvas"]) if o["canvas"] else canvas
    if canvas is None:
        if not openpose_json.normalised(poses):
            raise PoseSourceError(f"{where}: keypoints are in pixels but the image size is unknown; "
                                  f"set the pose `canvas: [width, height]` of the video they came from")
        poses, canvas, fit = [p * [width, height, 1] for p in poses], (width, height), "stretch"
    return draw_track([poses[i] for i in idx], canvas, width=width, height=height, fit=fit,
                      threshold=o["threshold"])


def keyframe_frames(source, *, frames, fps, width, height, fit="contain", **opts):
    """Keypoints written as {frame: {name: [x, y]}} keyframes, interpolated linearly per frame, drawn."""
    where = "pose keyframes"
    o = _options(opts, {"canvas": None, "threshold": THRESHOLD}, where)
    check_fit(fit, where=where)
    poses = kf.interpolate(kf.parse_keyframes(source, frames), frames)
    if o["canvas"]:
        return draw_track(poses, tuple(o["canvas"]), width=width, height=height, fit=fit,
                          threshold=o["threshold"])
    # Fractions of the output frame: they already are the output's layout, so fit does not apply.
    poses = [p * np.float32([width, height, 1]) for p in poses]
    return draw_track(poses, (width, height), width=width, height=height, fit="stretch",
                      threshold=o["threshold"])


def person_video_frames(source, *, frames, fps, width, height, fit="contain", **opts):
    """A video of a real person: MediaPipe keypoints (separate env, cached), gap-filled, smoothed, drawn."""
    from motion.pose.extract import extract_keypoints

    where = f"pose source {source}"
    o = _options(opts, {"overrun": "error", "threshold": THRESHOLD, "smooth": True,
                        "smooth_min_cutoff": MIN_CUTOFF, "smooth_beta": BETA, "track": False,
                        "complexity": 1, "cache_dir": None, "install_env": True, "source_hash": None},
                 where)
    check_fit(fit, where=where)
    if o["complexity"] != 1:
        # mediapipe 0.10.14 ships only pose_landmark_full.tflite; lite/heavy would be downloaded (offline: fail).
        raise PoseSourceError(f"{where}: complexity {o['complexity']!r} is not available offline; only 1 (the "
                              "full model inside the mediapipe wheel) is")
    track, source_fps, canvas = extract_keypoints(
        source, cache_dir=o["cache_dir"], complexity=o["complexity"], static=not o["track"],
        install_env=o["install_env"], source_hash=o["source_hash"])
    if not (track[..., 2] >= o["threshold"]).any():
        raise PoseSourceError(f"{where}: no person found in any of its {len(track)} frames; use a video "
                              f"where one person is fully in view, or lower the pose `threshold`")
    track = fill_gaps(track, o["threshold"])
    if o["smooth"]:
        track = one_euro(track, source_fps, scale=min(canvas), min_cutoff=o["smooth_min_cutoff"],
                         beta=o["smooth_beta"], threshold=o["threshold"])
    idx = source_indices(frames, fps, len(track), source_fps, overrun=o["overrun"], where=where)
    return draw_track([track[i] for i in idx], canvas, width=width, height=height, fit=fit,
                      threshold=o["threshold"])


SOURCES = {
    "skeleton": skeleton_frames,
    "openpose-json": openpose_json_frames,
    "keyframes": keyframe_frames,
    "person-video": person_video_frames,
}
