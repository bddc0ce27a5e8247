"""Pose extraction: accuracy and time of the test-time looks and worker processes, against one plain look.

    python -m benchmarks.pose_bench            # both astronaut pans, 16 frames each (a few minutes on 2 cores)
    python -m benchmarks.pose_bench --quick    # one pan, 8 frames

Each configuration runs on a fresh cache, so every frame goes to the detector. Accuracy is the distance of
each point from where the known crops put one consistent pose (worst / mean px at 416 px); time is wall time,
printed as a ratio to the baseline (1 look, 1 process) measured in the same run.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = 416
GROUPS = {"face": ["nose", "r_eye", "l_eye", "r_ear", "l_ear"],
          "shoulders": ["r_shoulder", "l_shoulder", "neck"], "elbows": ["r_elbow", "l_elbow"]}
# (x, y, size) crop of the 512 px photo on frame i of n: in-view keeps both arms inside the frame; edge
# moves the frame's left edge into her right arm in the last third.
PANS = {
    "in-view": lambda i, n: (0, round(56 * i / (n - 1)), round(448 - 28 * i / (n - 1))),
    "edge": lambda i, n: (round(42 * i / (n - 1)), round(21 * i / (n - 1)), round(448 - 28 * i / (n - 1))),
}
CONFIGS = [  # label, extract_keypoints options
    ("1 look, 1 process (baseline)", dict(pads=(), mirror=False, workers=1)),
    ("8 looks, 1 process", dict(pads=(0.1, 0.2, 0.3, 0.4), mirror=True, workers=1)),
    ("20 looks, 1 process", dict(workers=1)),
    ("20 looks, all cores (default)", dict(workers=0)),
]


def pan_video(folder: Path, crops: list[tuple[int, int, int]]) -> Path:
    import av
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    path = folder / "astronaut.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for x, y, s in crops:
            image = cv2.resize(photo[y:y + s, x:x + s], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def errors(track: np.ndarray, crops) -> np.ndarray:
    c = np.float32(crops)
    offset, scale = c[:, None, :2], SIDE / c[:, None, 2:3]
    pose = np.median(track[..., :2] / scale + offset, axis=0)
    return np.linalg.norm(track[..., :2] - (pose[None] - offset) * scale, axis=-1)


def summary(err: np.ndarray) -> str:
    from motion.pose.keypoints import INDEX

    return " | ".join(f"{max(err[:, INDEX[n]].max() for n in names):.1f} / "
                      f"{np.mean([err[:, INDEX[n]].mean() for n in names]):.1f}" for names in GROUPS.values())


def main(argv=None) -> int:
    from motion.pose.extract import extract_keypoints
    from motion.pose.extract_env import ensure_pose_env
    from motion.pose.smooth import fill_gaps, smooth_track

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pan, 8 frames")
    args = parser.parse_args(argv)
    frames = 8 if args.quick else 16
    pans = ["in-view"] if args.quick else list(PANS)
    ensure_pose_env()
    print("| pan | configuration | face | shoulders | elbows | s | × baseline time |")
    print("|---|---|---|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="pose-bench-") as tmp:
        for pan in pans:
            crops = [PANS[pan](i, frames) for i in range(frames)]
            video = pan_video(Path(tmp), crops)
            baseline = None
            for k, (label, options) in enumerate(CONFIGS):
                started = time.monotonic()
                track, fps, canvas = extract_keypoints(video, cache_dir=Path(tmp) / f"cache-{pan}-{k}", **options)
                seconds = time.monotonic() - started
                baseline = baseline or seconds
                print(f"| {pan} | {label} | {summary(errors(track[:, 0], crops))} | {seconds:.1f} | "
                      f"{seconds / baseline:.2f} |", flush=True)
            cleaned = smooth_track(fill_gaps(track, 0.3), fps, scale=min(canvas), threshold=0.3)
            print(f"| {pan} | 20 looks, cleaned (what is drawn) | {summary(errors(cleaned[:, 0], crops))} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
