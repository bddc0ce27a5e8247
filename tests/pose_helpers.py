"""Small builders shared by the pose tests (no fixtures needed from conftest)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from motion.pose.keypoints import INDEX


def person(**points) -> list[float]:
    """A COCO-18 `pose_keypoints_2d` list with the named points at (x, y, c); the rest missing."""
    flat = [0.0] * 54
    for name, (x, y, c) in points.items():
        flat[INDEX[name] * 3: INDEX[name] * 3 + 3] = [x, y, c]
    return flat


def write_openpose(path: Path, frames: list[list[list[float]]], canvas=None) -> Path:
    """One JSON file holding a list of OpenPose frames (each a list of people)."""
    doc = []
    for people in frames:
        frame = {"version": 1.3, "people": [{"pose_keypoints_2d": p} for p in people]}
        if canvas:
            frame.update(canvas_width=canvas[0], canvas_height=canvas[1])
        doc.append(frame)
    path.write_text(json.dumps(doc))
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Encode RGB frames to an H.264 MP4 with PyAV (high quality, so pixels barely change)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(fps) if float(fps).is_integer() else fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
