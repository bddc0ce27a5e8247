"""Read OpenPose JSON: a folder of per-frame `*_keypoints.json` files, or one file holding a list of frames.

Each frame is OpenPose's `{"people": [{"pose_keypoints_2d": [x, y, c, ...]}, ...]}`; COCO-18 (54 numbers)
and BODY_25 (75 numbers) are told apart by length. The canvas size comes from the `canvas` option, else
from `canvas_width`/`canvas_height` in the file (as the ControlNet pose editors write them); coordinates
that are all within 0-1 are taken as fractions of the output frame.
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


def normalised(poses: list[np.ndarray]) -> bool:
    """True when every confident coordinate lies within 0-1 (fractions, not pixels)."""
    values = [p[p[..., 2] > 0][:, :2] for p in poses if p.size]
    values = [v for v in values if v.size]
    return bool(values) and all(float(v.max()) <= 1.0 for v in values)


def to_openpose(poses: list[np.ndarray], width: int, height: int) -> list[dict]:
    """Per-frame (people, 18, 3) arrays in pixels → OpenPose COCO-18 frames with the canvas size, the list
    format parse_poses reads back (and pose editors load)."""
    return [{"version": 1.3, "canvas_width": int(width), "canvas_height": int(height),
             "people": [{"pose_keypoints_2d": [round(float(v), 3) for v in person.reshape(-1)]}
                        for person in np.asarray(frame, np.float32).reshape(-1, 18, 3)]}
            for frame in poses]
