"""The separate Python environment that runs the pose detector (MediaPipe), kept apart from the main install.

Why a separate venv: the mediapipe wheels that still ship the legacy pose model inside the package
(0.10.14-0.10.21, `mediapipe/modules/pose_landmark/pose_landmark_full.tflite`) pin protobuf<5, and depend on
opencv-contrib-python, which installs the same `cv2` module as our opencv-python-headless. So the detector
lives in `<cache>/pose-env` and runs as a subprocess; the main process never imports mediapipe.

    python -m motion.pose.extract_env install     # create or repair the env (needs PyPI once)
    python -m motion.pose.extract_env check       # print the env's python if it is ready
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from motion.errors import PoseSourceError
from motion.pose.cache import cache_root

MEDIAPIPE = "mediapipe==0.10.14"
# Written after a successful install and import check; its content names the pinned package.
READY_MARK = ".ready"
IMPORT_CHECK = (
    "import mediapipe as mp, os; "
    "m = os.path.join(os.path.dirname(mp.__file__), 'modules', 'pose_landmark', 'pose_landmark_full.tflite'); "
    "assert os.path.exists(m), m; mp.solutions.pose.Pose; print(mp.__version__)"
)


def pose_env_dir(env_dir: str | os.PathLike | None = None) -> Path:
    """Where the detector's venv lives: `env_dir`, else $ANIMATE_POSE_ENV, else <cache root>/pose-env.

    It is an install, not a cache entry, so a per-call `cache_dir` does not move it."""
    if env_dir is not None:
        return Path(env_dir)
    env = os.environ.get("ANIMATE_POSE_ENV")
    return Path(env) if env else cache_root() / "pose-env"


def _env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pose_env_python(env_dir: str | os.PathLike | None = None) -> Path | None:
    """The env's python if the env is installed and checked, else None."""
    env = pose_env_dir(env_dir)
    mark = env / READY_MARK
    python = _env_python(env)
    if mark.exists() and mark.read_text().strip() == MEDIAPIPE and python.exists():
        return python
    return None


def ensure_pose_env(env_dir: str | os.PathLike | None = None, *, install: bool = True,
                    log=None) -> Path:
    """Return the detector env's python, creating the env first when `install` (else raise if missing)."""
    python = pose_env_python(env_dir)
    if python is not None:
        return python
    env = pose_env_dir(env_dir)
    if not install:
        raise PoseSourceError(
            f"person-video: the pose detector env {env} is not installed; "
            f"run `python -m motion.pose.extract_env install` (needs PyPI once, about a minute)")
    return install_pose_env(env_dir, log=log)


def install_pose_env(env_dir: str | os.PathLike | None = None, *, log=None) -> Path:
    """Create `<cache>/pose-env` with mediapipe and check that the pose model loads; return its python."""
    env = pose_env_dir(env_dir)
    say = log or (lambda msg: print(msg, file=sys.stderr))
    python = _env_python(env)
    steps = [
        ("creating the venv", [sys.executable, "-m", "venv", "--clear", str(env)]) if not python.exists()
        else None,
        (f"pip install {MEDIAPIPE}", [str(python), "-m", "pip", "install", "-q",
                                      "--disable-pip-version-check", MEDIAPIPE]),
        ("checking the pose model loads", [str(python), "-c", IMPORT_CHECK]),
    ]
    (env / READY_MARK).unlink(missing_ok=True)
    for label, cmd in filter(None, steps):
        say(f"pose-env {env}: {label}")
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PoseSourceError(
                f"person-video: {label} for the pose detector env {env} failed: {tail[0]}; "
                f"check PyPI access, then run `python -m motion.pose.extract_env install` again")
        say(f"pose-env: {label}: done in {time.monotonic() - started:.1f}s")
    (env / READY_MARK).write_text(MEDIAPIPE + "\n")
    return python


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    what = args[0] if args else "check"
    if what == "install":
        started = time.monotonic()
        python = ensure_pose_env()
        print(f"{python} (ready in {time.monotonic() - started:.0f}s)")
        return 0
    if what == "check":
        python = pose_env_python()
        print(python if python else f"not installed: {pose_env_dir()}")
        return 0 if python else 1
    print("usage: python -m motion.pose.extract_env [install|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
