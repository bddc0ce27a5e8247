"""Extract keypoints from a video of a person with MediaPipe Pose, run in the separate pose env.

The main process decodes the video (PyAV), hands the frames to extract_worker.py in the pose env as a
.npy stack, and reads back 33 landmarks per frame, mapped here to COCO-18 in the video's pixels. Results
are cached by the video's content hash, so a re-run does not extract again.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from motion.errors import PoseSourceError
from motion.pose import cache
from motion.pose.cache import cache_root
from motion.pose.extract_env import MEDIAPIPE, ensure_pose_env
from motion.pose.keypoints import empty_pose, from_mediapipe
from motion.pose.media import read_video, video_info

WORKER = Path(__file__).with_name("extract_worker.py")
MAX_SIDE = 640  # MediaPipe looks at 256 px crops; bigger frames only cost memory in the hand-over
CHUNK = 240  # frames decoded and handed over at a time (~170 MB at 640 x 360)
# Test-time augmentation (see extract_worker.py): each frame is run letterboxed in each of these black
# margins (share of its long side), each of those mirrored too, and the 20 looks averaged by visibility.
# On the astronaut pans of benchmarks/pose_bench.py the worst elbow error went from 15-29 px (one look) and
# 11-14 px (8 looks) to 8-11 px (these 20), 6-7 px once cleaned while the arm is in view, for ~10x the
# detector time of one look; static detection spreads the frames over all CPU cores.
PADS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
MIRROR = True


def run_worker(python: Path, frames_path: Path, out_path: Path, *, complexity: int = 1,
               static: bool = False, pads=(), mirror: bool = False, workers: int = 0) -> dict:
    """Run the detector on a frame stack or video in the pose env; return its JSON result.
    `workers`: processes for static detection (0: one per CPU core; the result does not depend on it)."""
    import json

    cmd = [str(python), str(WORKER), "--input", str(frames_path), "--out", str(out_path),
           "--complexity", str(complexity), "--pads", ",".join(str(p) for p in pads),
           "--workers", str(int(workers))]
    cmd += (["--static"] if static else []) + (["--mirror"] if mirror else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()] or ["no output"]
        raise PoseSourceError(
            f"person-video {frames_path.name}: the pose detector failed ({lines[-1].strip()}); "
            f"reinstall its env with `python -m motion.pose.extract_env install`")
    return json.loads(out_path.read_text())


def extract_keypoints(video: str | Path, *, indices=None, cache_dir=None, complexity: int = 1,
                      static: bool = True, install_env: bool = True, source_hash: str | None = None,
                      pads=PADS, mirror: bool = MIRROR, workers: int = 0):
    """Keypoints of the person in `video`: ((len(indices), 1, 18, 3) array in video pixels, fps, (w, h)).

    `indices` picks the frames (default: all), so a short clip driven by a long video only pays for the
    frames it shows. Each frame's result is cached on its own: a later clip reuses what was found and
    extracts only new frames. MediaPipe's tracking (`static=False`) needs every frame in order, so it
    always runs on the whole video. `pads` and `mirror` set the test-time augmentation (`pads=(),
    mirror=False`: the frame alone); `workers` the detector processes (0: one per CPU core)."""
    video = Path(video)
    info = video_info(video)
    wanted = list(range(info.frames)) if indices is None else [int(i) for i in indices]
    entry = keypoint_entry(video, cache_dir=cache_dir, complexity=complexity, static=static, pads=pads,
                           mirror=mirror, source_hash=source_hash)
    found = cached_frames(entry)
    needed = missing_frames(found, wanted, info.frames, static)
    if needed:
        python = ensure_pose_env(install=install_env)
        # Tracking carries state from frame to frame, so it runs as one pass; detection goes in chunks
        # (bounded memory), each saved as soon as it is done.
        step = len(needed) if not static else CHUNK
        for start in range(0, len(needed), step):
            chunk = needed[start:start + step]
            result = _run_on_frames(python, video, chunk, complexity=complexity, static=static,
                                    pads=pads, mirror=mirror, workers=workers)
            # Merge with what is on disk now: another run may have added frames meanwhile.
            found = {**cached_frames(entry), **found, **{str(i): lms for i, lms in zip(chunk, result["frames"])}}
            cache.save_json(entry, {"frames": found})
    track = np.stack([
        empty_pose(1)[0] if found[str(i)] is None else from_mediapipe(found[str(i)], info.width, info.height)
        for i in wanted
    ])[:, None] if wanted else np.zeros((0, 1, 18, 3), np.float32)
    return track, info.fps, (info.width, info.height)


def keypoint_entry(video: Path, *, cache_dir=None, complexity: int = 1, static: bool = True, pads=PADS,
                   mirror: bool = MIRROR, source_hash: str | None = None) -> Path:
    """The cache file holding a video's per-frame keypoints for these detector options."""
    key = cache.cache_key(source_hash or cache.hash_source(video), what="extract", model=MEDIAPIPE,
                          worker=cache.code_fingerprint(WORKER), complexity=complexity, static=static,
                          max_side=MAX_SIDE, pads=[float(p) for p in pads], mirror=bool(mirror))
    return cache_root(cache_dir) / "pose" / f"keypoints-{key}.json"


def cached_frames(entry: Path) -> dict:
    """{frame index as str: landmarks or None} from a keypoint cache entry ({} if absent or unreadable)."""
    frames = (cache.load_json(entry) or {}).get("frames") if entry.exists() else None
    return frames if isinstance(frames, dict) else {}


def missing_frames(found: dict, wanted: list[int], total: int, static: bool) -> list[int]:
    """Frames still to extract: the wanted ones not cached (tracking: every frame of the video)."""
    return sorted(set(wanted if static else range(total)) - {int(i) for i in found})


def frames_to_extract(video: str | Path, indices: list[int], *, cache_dir=None, complexity: int = 1,
                      static: bool = True, source_hash: str | None = None) -> int:
    """How many frames extract_keypoints(video, indices=...) would send to the detector now."""
    video = Path(video)
    entry = keypoint_entry(video, cache_dir=cache_dir, complexity=complexity, static=static,
                           source_hash=source_hash)
    return len(missing_frames(cached_frames(entry), list(indices), video_info(video).frames, static))


def _run_on_frames(python: Path, video: Path, indices: list[int], **options) -> dict:
    """Decode the given frames and run the detector on them in the pose env. A frame the video does not
    really have (its header overstated the frame count) counts as one where nobody was found."""
    frames = read_video(video, indices, max_side=MAX_SIDE, missing_ok=True)
    present = [k for k, frame in enumerate(frames) if frame is not None]
    if not present:
        return {"frames": [None] * len(indices)}
    with tempfile.TemporaryDirectory(prefix="animate-pose-") as tmp:
        stack = Path(tmp) / f"{video.stem}.npy"
        np.save(stack, np.stack([frames[k] for k in present]))
        del frames
        result = run_worker(python, stack, Path(tmp) / "keypoints.json", **options)
    if len(result["frames"]) != len(present):
        raise PoseSourceError(f"person-video {video.name}: the pose detector returned "
                              f"{len(result['frames'])} frames for {len(present)}; reinstall its env with "
                              f"`python -m motion.pose.extract_env install`")
    out = [None] * len(indices)
    for k, lms in zip(present, result["frames"]):
        out[k] = lms
    return {**result, "frames": out}
