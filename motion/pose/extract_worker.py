"""Pose detector worker: runs INSIDE the pose env (mediapipe), started by motion.pose.extract as a subprocess.

It imports nothing from this project, so it runs from its file path with the env's python:
    <pose-env>/bin/python extract_worker.py --input frames.npy|video.mp4 --out keypoints.json \
        [--pads 0,0.1,0.2] [--mirror] [--static] [--workers N]
Output: {"width", "height", "mediapipe", "variants", "frames": [null | [[x, y, z, visibility] * 33], ...]}
with x, y normalised to the frame (MediaPipe's own convention); null where no person was found.

Test-time augmentation: MediaPipe finds the person with a detector whose box (and so the crop the landmark
model sees) depends on the framing; a person who fills the frame, cut at the bottom, gets a different crop
on every frame and the shoulders and elbows wander by 10-25 px. With `--pads` each frame is run
letterboxed in a black margin of each given share of its long side on every side, and with `--mirror` each
of those again mirrored (left and right landmarks swapped back); the landmarks are mapped back to the
frame and averaged, weighted by visibility. The average of these differently framed looks is much steadier,
and where the looks disagree widely (points the model invents outside the picture) confidence drops to 0.
"""
import argparse
import json
import sys

# MediaPipe's 33 landmarks: pairs that swap under a horizontal mirror (eyes, ears, mouth, arms, legs, feet).
MIRROR_PAIRS = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
                (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))


def mirror_order():
    order = list(range(33))
    for a, b in MIRROR_PAIRS:
        order[a], order[b] = b, a
    return order


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


def variants(pads, mirror):
    """(pad share, mirrored) of every look at a frame: the frame itself first."""
    shares = list(pads) if pads else [0.0]
    return [(p, m) for m in ((False, True) if mirror else (False,)) for p in shares]


def look(rgb, pad, mirrored):
    """The frame as one variant sees it, and its margin in pixels."""
    import numpy as np

    image = rgb[:, ::-1] if mirrored else rgb
    margin = int(round(pad * max(rgb.shape[:2])))
    if margin:
        image = np.pad(image, ((margin, margin), (margin, margin), (0, 0)))  # black letterbox
    return np.ascontiguousarray(image), margin


def landmarks_back(result, shape, margin, mirrored, order):
    """A variant's landmarks as (33, 4) [x, y, z, visibility], normalised to the original frame."""
    import numpy as np

    h, w = shape[:2]
    lms = np.array([[lm.x, lm.y, lm.z, lm.visibility] for lm in result.pose_landmarks.landmark], np.float64)
    lms[:, 0] = (lms[:, 0] * (w + 2 * margin) - margin) / w
    lms[:, 1] = (lms[:, 1] * (h + 2 * margin) - margin) / h
    lms[:, 2] *= (w + 2 * margin) / w  # z is in the image's width units
    if mirrored:
        lms[:, 0] = 1.0 - lms[:, 0]
        lms = lms[order]
    return lms


# Agreement between the looks, as the mean distance of their positions from the combined one, in shares of
# the frame's short side. On the astronaut pans every real point stayed within 0.12 (elbows 0.09, wrists
# 0.12) while the knees MediaPipe invents below a waist-up shot scattered by 0.25-0.30: a point is fully
# trusted up to SPREAD_OK, not at all from SPREAD_NONE, and its confidence scaled linearly in between.
SPREAD_OK = 0.15
SPREAD_NONE = 0.24


def combine(found, total, shape=(1, 1)):
    """Visibility-weighted mean of the variants' landmarks. Visibility becomes their mean, scaled by the
    share of variants that found the person at all and by how well the variants agree on the point."""
    import numpy as np

    stack = np.stack(found)
    weight = np.clip(stack[..., 3:4], 1e-3, None)
    out = (stack * weight).sum(0) / weight.sum(0)
    h, w = shape[:2]
    offsets = (stack[..., :2] - out[:, :2]) * [w, h]
    spread = np.sqrt((offsets ** 2).sum(-1)).mean(0) / min(w, h)
    agreement = np.clip((SPREAD_NONE - spread) / (SPREAD_NONE - SPREAD_OK), 0.0, 1.0)
    out[:, 3] = stack[..., 3].mean(0) * len(found) / total * agreement
    return out


def new_pose(complexity, static):
    import mediapipe as mp

    # smooth_landmarks off: the main process fills gaps and smooths, with settings the user controls.
    return mp.solutions.pose.Pose(static_image_mode=static, model_complexity=complexity,
                                  smooth_landmarks=False, enable_segmentation=False,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5)


def detect(frames, looks, complexity, static):
    """Combined landmarks (or None) of each RGB frame, every frame looked at in each of `looks`."""
    order = mirror_order()
    # Detecting from scratch keeps no state, so one graph serves every look; tracking needs one per look.
    poses = ([new_pose(complexity, static)] * len(looks) if static
             else [new_pose(complexity, static) for _ in looks])
    out = []
    try:
        for rgb in frames:
            found = []
            for pose, (pad, mirrored) in zip(poses, looks):
                image, margin = look(rgb, pad, mirrored)
                result = pose.process(image)
                if result.pose_landmarks is not None:
                    found.append(landmarks_back(result, rgb.shape, margin, mirrored, order))
            out.append(combine(found, len(looks), rgb.shape).tolist() if found else None)
    finally:
        for pose in {id(p): p for p in poses}.values():
            pose.close()
    return out


def _detect_chunk(job):
    path, start, stop, looks, complexity = job
    import numpy as np

    frames = np.load(path, mmap_mode="r")[start:stop]
    return detect((np.ascontiguousarray(f) for f in frames), looks, complexity, True)


def detect_parallel(path, count, looks, complexity, workers):
    """Static detection of a .npy frame stack split into contiguous chunks over `workers` processes
    (MediaPipe runs one graph on one core; frames are independent when nothing is tracked)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = [round(i * count / workers) for i in range(workers + 1)]
    jobs = [(path, a, b, looks, complexity) for a, b in zip(bounds, bounds[1:]) if b > a]
    # An executor, not a Pool: if a process dies (out of memory, a crash in mediapipe) it raises
    # BrokenProcessPool, where Pool.map would wait forever.
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [lms for chunk in pool.map(_detect_chunk, jobs) for lms in chunk]


def main(argv=None):
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--complexity", type=int, default=1, choices=(0, 1, 2),
                        help="0 lite, 1 full, 2 heavy (only the full model ships in the 0.10.14 wheel)")
    parser.add_argument("--static", action="store_true",
                        help="detect every frame from scratch instead of tracking the previous pose")
    parser.add_argument("--pads", default="",
                        help="comma-separated letterbox margins (share of the long side) to run each frame "
                             "with, averaged; empty: the frame alone")
    parser.add_argument("--mirror", action="store_true",
                        help="also run every variant mirrored, swapping left and right back")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes for static detection of a .npy stack (0: one per CPU core)")
    args = parser.parse_args(argv)
    pads = [float(p) for p in args.pads.split(",") if p.strip()]
    looks = variants(pads, args.mirror)

    import mediapipe as mp
    import numpy as np

    if args.input.endswith(".npy"):
        stack = np.load(args.input, mmap_mode="r")
        count, (height, width) = len(stack), (stack.shape[1:3] if len(stack) else (0, 0))
        del stack
    else:
        count, height, width = None, 0, 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(args.workers or cores or 1, count or 1)
    if args.static and count and workers > 1:
        frames = detect_parallel(args.input, count, looks, args.complexity, workers)
    else:
        shape = []

        def remember(frames):  # a video's size is known once its first frame is read
            for rgb in frames:
                shape[:] = rgb.shape[:2]
                yield rgb

        frames = detect(remember(iter_frames(args.input)), looks, args.complexity, args.static)
        height, width = shape or (height, width)
    with open(args.out, "w") as fh:
        json.dump({"width": int(width), "height": int(height), "mediapipe": mp.__version__,
                   "variants": [{"pad": p, "mirror": m} for p, m in looks], "frames": frames}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
