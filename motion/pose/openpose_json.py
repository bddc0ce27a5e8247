"""Read OpenPose JSON: a folder of per-frame `*_keypoints.json` files, or one file holding a list of frames.

Each frame is OpenPose's `{"people": [{"pose_keypoints_2d": [x, y, c, ...]}, ...]}`; COCO-18 (54 numbers)
and BODY_25 (75 numbers) are told apart by length. The canvas size comes from the `canvas` option, else
from `canvas_width`/`canvas_height` in the file (as the ControlNet pose editors write them).

Coordinates come in three scales (OpenPose's `--keypoint_scale`): pixels (0-2, the default 0), fractions in
[0, 1] (3: (0, 0) top left, (1, 1) bottom right) and [-1, 1] (4: (-1, -1) top left). `coordinate_scale` tells
them apart over the whole source at once (so every frame is read the same way), from the confident points
only: every |x|, |y| <= 1 means fractions (no real pose fits in one pixel), and any negative value among them
means [-1, 1] ([0, 1] has none). Fractions are of the canvas when one is known, else of the output frame.
A [-1, 1] pose lying wholly in the bottom-right quarter of its image in every frame has no negative value
and would be read as [0, 1]: export such sources in pixels or in [0, 1].
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError
from motion.pose.keypoints import from_openpose_flat, stack_people
from motion.pose.media import natural_key


def json_files(folder: Path) -> list[Path]:
    """The frame files of a folder: `*_keypoints.json` if there are any (OpenPose's names), else `*.json`."""
    files = [p for p in folder.glob("*_keypoints.json") if p.is_file()] or \
        [p for p in folder.glob("*.json") if p.is_file()]
    return sorted(files, key=natural_key)


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PoseSourceError(f"pose source {path}: not readable JSON ({exc}); fix or re-export the file") \
            from None


def load_frames(source: Path) -> list[dict]:
    """The frame dicts of a JSON file or a folder of JSON files, in order."""
    if source.is_dir():
        files = json_files(source)
        if not files:
            raise PoseSourceError(f"pose source {source}: no .json files in the folder; "
                                  f"export OpenPose keypoints with --write_json")
        return [_load(f) for f in files]
    data = _load(source)
    if isinstance(data, dict) and isinstance(data.get("frames"), list):
        data = data["frames"]
    frames = data if isinstance(data, list) else [data]
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("people", None), list):
            raise PoseSourceError(f"pose source {source}: frame {i} has no `people` list; give OpenPose "
                                  f"JSON ({{\"people\": [{{\"pose_keypoints_2d\": [...]}}]}} per frame)")
    return frames


def parse_poses(source: Path) -> tuple[list[np.ndarray], tuple[float, float] | None]:
    """Per-frame (people, 18, 3) arrays and the canvas size written in the file (or None)."""
    frames = load_frames(source)
    poses = []
    for i, frame in enumerate(frames):
        people = [from_openpose_flat(p["pose_keypoints_2d"], where=f"pose source {source} frame {i}")
                  for p in frame["people"]
                  if isinstance(p, dict) and p.get("pose_keypoints_2d")]
        poses.append(stack_people(people))
    if not any(p.shape[0] for p in poses):
        raise PoseSourceError(f"pose source {source}: no people in any of its {len(poses)} frame(s); "
                              f"check the export (OpenPose found nobody) or use another source")
    first = frames[0]
    canvas = None
    if first.get("canvas_width") and first.get("canvas_height"):
        canvas = (float(first["canvas_width"]), float(first["canvas_height"]))
    return poses, canvas


SCALES = ("pixels", "unit", "signed")  # --keypoint_scale 0-2, 3 ([0, 1]) and 4 ([-1, 1])


def coordinate_scale(poses: list[np.ndarray]) -> str:
    """pixels, unit ([0, 1]) or signed ([-1, 1]): the scale of a source's confident coordinates (module doc)."""
    values = [p[p[..., 2] > 0][:, :2] for p in poses if p.size]
    values = np.concatenate([v.reshape(-1) for v in values if v.size] or [np.zeros(0, np.float32)])
    if not values.size or float(np.abs(values).max()) > 1.0:
        return "pixels"
    return "signed" if float(values.min()) < 0 else "unit"


def normalised(poses: list[np.ndarray]) -> bool:
    """True when the confident coordinates are fractions ([0, 1] or [-1, 1]), not pixels."""
    return coordinate_scale(poses) != "pixels"


def to_pixels(poses: list[np.ndarray], scale: str, size: tuple[float, float]) -> list[np.ndarray]:
    """Fraction coordinates of `scale` → pixels of an image of `size` (w, h); confidence untouched."""
    if scale == "pixels":
        return poses
    w, h = size
    out = []
    for pose in poses:
        pose = np.array(pose, np.float32, copy=True)
        if scale == "signed":
            pose[..., :2] = (pose[..., :2] + 1.0) / 2.0
        pose[..., 0] *= w
        pose[..., 1] *= h
        out.append(pose)
    return out


def to_openpose(poses: list[np.ndarray], width: int, height: int) -> list[dict]:
    """Per-frame (people, 18, 3) arrays in pixels → OpenPose COCO-18 frames with the canvas size, the list
    format parse_poses reads back (and pose editors load)."""
    return [{"version": 1.3, "canvas_width": int(width), "canvas_height": int(height),
             "people": [{"pose_keypoints_2d": [round(float(v), 3) for v in person.reshape(-1)]}
                        for person in np.asarray(frame, np.float32).reshape(-1, 18, 3)]}
            for frame in poses]
