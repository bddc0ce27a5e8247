"""Pose detector worker: runs INSIDE the pose env (mediapipe), started by motion.pose.extract as a subprocess.

It imports nothing from this project, so it runs from its file path with the env's python:
    <pose-env>/bin/python extract_worker.py --input frames.npy|video.mp4 --out keypoints.json \
        [--pads 0.1,0.2,0.3,0.4] [--mirror]
Output: {"width", "height", "mediapipe", "variants", "frames": [null | [[x, y, z, visibility] * 33], ...]}
with x, y normalised to the frame (MediaPipe's own convention); null where no person was found.

Test-time augmentation: MediaPipe finds the person with a detector whose box (and so the crop the landmark
model sees) depends on the framing; a person who fills the frame, cut at the bottom, gets a different crop
on every frame and the shoulders and elbows wander by 10-25 px. With `--pads` each frame is run
letterboxed in a black margin of each given share of its long side on every side, and with `--mirror` each
of those again mirrored (left and right landmarks swapped back); the landmarks are mapped back to the
frame and averaged, weighted by visibility. The average of these differently framed looks is much steadier.
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


def combine(found, total):
    """Visibility-weighted mean of the variants' landmarks; visibility is their mean, scaled by the share
    of variants that found the person at all."""
    import numpy as np

    stack = np.stack(found)
    weight = np.clip(stack[..., 3:4], 1e-3, None)
    out = (stack * weight).sum(0) / weight.sum(0)
    out[:, 3] = stack[..., 3].mean(0) * len(found) / total
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--complexity", type=int, default=1, choices=(0, 1),
                        help="0 lite, 1 full (only the full model ships in the 0.10.14 wheel; lite downloads)")
    parser.add_argument("--static", action="store_true",
                        help="detect every frame from scratch instead of tracking the previous pose")
    parser.add_argument("--pads", default="",
                        help="comma-separated letterbox margins (share of the long side) to run each frame "
                             "with, averaged; empty: the frame alone")
    parser.add_argument("--mirror", action="store_true",
                        help="also run every variant mirrored, swapping left and right back")
    args = parser.parse_args(argv)
    pads = [float(p) for p in args.pads.split(",") if p.strip()]
    looks = variants(pads, args.mirror)
    order = mirror_order()

    import mediapipe as mp

    def new_pose():
        # smooth_landmarks off: the main process fills gaps and smooths, with settings the user controls.
        return mp.solutions.pose.Pose(static_image_mode=args.static, model_complexity=args.complexity,
                                      smooth_landmarks=False, enable_segmentation=False,
                                      min_detection_confidence=0.5, min_tracking_confidence=0.5)

    # Detecting from scratch keeps no state, so one graph serves every look; tracking needs one per look.
    poses = [new_pose()] * len(looks) if args.static else [new_pose() for _ in looks]
    frames, width, height = [], 0, 0
    try:
        for rgb in iter_frames(args.input):
            height, width = rgb.shape[:2]
            found = []
            for pose, (pad, mirrored) in zip(poses, looks):
                image, margin = look(rgb, pad, mirrored)
                result = pose.process(image)
                if result.pose_landmarks is not None:
                    found.append(landmarks_back(result, rgb.shape, margin, mirrored, order))
            frames.append(combine(found, len(looks)).tolist() if found else None)
    finally:
        for pose in {id(p): p for p in poses}.values():
            pose.close()
    with open(args.out, "w") as fh:
        json.dump({"width": width, "height": height, "mediapipe": mp.__version__,
                   "variants": [{"pad": p, "mirror": m} for p, m in looks], "frames": frames}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
