"""Pose detector worker: runs INSIDE the pose env (mediapipe), started by motion.pose.extract as a subprocess.

It imports nothing from this project, so it runs from its file path with the env's python:
    <pose-env>/bin/python extract_worker.py --input frames.npy|video.mp4 --out keypoints.json
Output: {"width", "height", "mediapipe", "frames": [null | [[x, y, z, visibility] * 33], ...]} with x, y
normalised to the frame (MediaPipe's own convention); null where no person was found.
"""
import argparse
import json
import sys


def iter_frames(path):
    """RGB uint8 frames from a .npy stack (F, H, W, 3) or any video OpenCV can read."""
    import numpy as np

    if path.endswith(".npy"):
        for frame in np.load(path, mmap_mode="r"):
            yield np.ascontiguousarray(frame)
        return
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--complexity", type=int, default=1, choices=(0, 1),
                        help="0 lite, 1 full: the two models shipped in the wheel (2 would download)")
    parser.add_argument("--static", action="store_true",
                        help="detect every frame from scratch instead of tracking the previous pose")
    args = parser.parse_args(argv)

    import mediapipe as mp

    frames, width, height = [], 0, 0
    # smooth_landmarks off: the main process fills gaps and smooths, with settings the user controls.
    with mp.solutions.pose.Pose(static_image_mode=args.static, model_complexity=args.complexity,
                                smooth_landmarks=False, enable_segmentation=False,
                                min_detection_confidence=0.5, min_tracking_confidence=0.5) as pose:
        for rgb in iter_frames(args.input):
            height, width = rgb.shape[:2]
            result = pose.process(rgb)
            if result.pose_landmarks is None:
                frames.append(None)
            else:
                frames.append([[lm.x, lm.y, lm.z, lm.visibility] for lm in result.pose_landmarks.landmark])
    with open(args.out, "w") as fh:
        json.dump({"width": width, "height": height, "mediapipe": mp.__version__, "frames": frames}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
