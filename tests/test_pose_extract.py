"""Real extraction: MediaPipe in the separate pose env, offline, on scikit-image's astronaut photo.

The photo is panned and zoomed into an 8-frame video with known crops, so where each keypoint should be
on every frame follows from where it is on the others. Needs the pose env: CI creates it beforehand with
`python -m motion.pose.extract_env install`; without it, ensure_pose_env() installs it from PyPI (~1.5 min).
"""
import time

import numpy as np
import pytest

from motion.pose import pose_frames
from motion.pose.draw import COLORS
from motion.pose.extract import extract_keypoints
from motion.pose.extract_env import ensure_pose_env
from motion.pose.keypoints import INDEX
from pose_helpers import write_video

SIDE = 416
FACE = ["nose", "r_eye", "l_eye", "r_ear", "l_ear"]
SHOULDERS = ["r_shoulder", "l_shoulder", "neck"]
ELBOWS = ["r_elbow", "l_elbow"]


def crops(n=8):
    """(x, y, size) of each frame's square crop of the 512 px photo: pan 6 px right, 3 down, zoom in."""
    return [(6 * i, 3 * i, 448 - 4 * i) for i in range(n)]


@pytest.fixture(scope="module")
def astronaut_video(tmp_path_factory):
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    frames = [cv2.resize(photo[y:y + s, x:x + s], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
              for x, y, s in crops()]
    return write_video(tmp_path_factory.mktemp("astro") / "astronaut.mp4", frames, fps=8)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def extracted(astronaut_video, cache_dir):
    ensure_pose_env()
    started = time.monotonic()
    track, fps, canvas = extract_keypoints(astronaut_video, cache_dir=cache_dir)
    print(f"\nextraction of 8 frames at {SIDE}px: {time.monotonic() - started:.1f}s")
    return track[:, 0], fps, canvas


def errors(track):
    """Per-frame distance (px) of each point from where the known crops put one consistent pose."""
    c = np.float32(crops())
    offset, scale = c[:, None, :2], SIDE / c[:, None, 2:3]
    in_photo = track[..., :2] / scale + offset  # back to the photo's pixels
    pose = np.median(in_photo, axis=0)
    expected = (pose[None] - offset) * scale
    return np.linalg.norm(track[..., :2] - expected, axis=-1)


def test_keypoints_found_on_every_frame(extracted):
    track, fps, canvas = extracted
    assert (fps, canvas, track.shape) == (8.0, (SIDE, SIDE), (8, 18, 3))
    # The elbows are at the bottom edge, half out of the photo: their visibility is lowest (>= 0.37 measured).
    for name in FACE + SHOULDERS + ELBOWS:
        assert (track[:, INDEX[name], 2] >= 0.3).all(), (name, track[:, INDEX[name], 2])


def test_keypoints_move_with_the_pan(extracted):
    track, _, _ = extracted
    err = errors(track)
    worst = {name: float(err[:, INDEX[name]].max()) for name in FACE + SHOULDERS + ELBOWS}
    mean = {name: float(err[:, INDEX[name]].mean()) for name in FACE + SHOULDERS + ELBOWS}
    print("\nerror per keypoint, worst / mean (px at 416 px):",
          {k: f"{worst[k]:.1f}/{mean[k]:.1f}" for k in worst})
    # Measured with 8 looks per frame (4 letterbox margins x mirror): face <= 1.7 px, shoulders <= 5.0 px
    # (the suit hides them), elbows <= 15.1 px (at the bottom edge, half out of the photo). One look per frame
    # gave 4.1, 17 and 26 px.
    assert max(worst[n] for n in FACE) < 3
    assert max(worst[n] for n in SHOULDERS) < 7
    assert max(worst[n] for n in ELBOWS) < 18
    # The face drifts left and up as the crop pans right and down and zooms: 6 px/frame * ~1 scale.
    nose = track[:, INDEX["nose"], :2]
    assert nose[-1, 0] < nose[0, 0] - 20 and nose[-1, 1] < nose[0, 1] - 5


def test_person_video_to_conditioning_frames(astronaut_video, extracted, cache_dir):
    track, _, _ = extracted
    # Auto-detected as person-video (a photo is not mostly black); the keypoints come from the cache.
    frames = pose_frames(astronaut_video, frames=8, fps=8, width=256, height=256, cache_dir=cache_dir)
    assert len(frames) == 8 and frames[0].shape == (256, 256, 3)
    for image in frames:
        assert (image.max(axis=-1) == 0).mean() > 0.8  # a skeleton on black
    # The nose (smoothed) is drawn within a few pixels of the raw detection scaled to 256 px.
    x, y = track[4, INDEX["nose"], :2] * 256 / SIDE
    patch = frames[4][int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5].reshape(-1, 3)
    assert any(tuple(p) == COLORS[INDEX["nose"]] for p in patch)


def test_augmentation_options_are_in_the_cache_key(astronaut_video, tmp_path, monkeypatch):
    from motion.pose import extract

    calls = []

    def run_worker(python, frames_path, out_path, **kw):
        calls.append(kw)
        return {"width": SIDE, "height": SIDE, "frames": [None] * 8}

    monkeypatch.setattr(extract, "run_worker", run_worker)
    monkeypatch.setattr(extract, "ensure_pose_env", lambda install=True: tmp_path / "python")
    for opts in ({}, {}, {"mirror": False}, {"pads": ()}, {"pads": (0.2,)}, {"pads": (0.2,)}):
        extract_keypoints(astronaut_video, cache_dir=tmp_path / "cache", **opts)
    assert len(calls) == 4  # the repeats come from the cache
    assert calls[0]["pads"] == extract.PADS and calls[0]["mirror"] is True


def test_worker_maps_padded_and_mirrored_landmarks_back():
    import importlib.util
    from types import SimpleNamespace

    from motion.pose.extract import WORKER

    spec = importlib.util.spec_from_file_location("extract_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    frame = np.zeros((100, 200, 3), np.uint8)
    image, margin = worker.look(frame, 0.1, True)
    assert margin == 20 and image.shape == (140, 240, 3)
    # A point at pixel (50, 30) of the frame, landmark 11 (left shoulder): in the mirrored, padded image it
    # is at (200 - 50 + 20, 30 + 20) and, mirrored, the model calls it landmark 12 (right shoulder).
    lms = [SimpleNamespace(x=0.0, y=0.0, z=0.0, visibility=0.0) for _ in range(33)]
    lms[12] = SimpleNamespace(x=170 / 240, y=50 / 140, z=0.0, visibility=0.9)
    back = worker.landmarks_back(SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=lms)),
                                 frame.shape, margin, True, worker.mirror_order())
    np.testing.assert_allclose(back[11], [50 / 200, 30 / 100, 0.0, 0.9], atol=1e-9)
    combined = worker.combine([back, back], total=4)
    np.testing.assert_allclose(combined[11], [0.25, 0.3, 0.0, 0.45], atol=1e-9)
