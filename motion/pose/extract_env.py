"""The separate Python environment that runs the pose detector (MediaPipe), kept apart from the main install.

Why a separate venv: the mediapipe wheels that still ship the legacy pose model inside the package
(0.10.14-0.10.21, `mediapipe/modules/pose_landmark/pose_landmark_full.tflite`) pin protobuf<5, and depend on
opencv-contrib-python, which installs the same `cv2` module as our opencv-python-headless. So the detector
lives in `<cache>/pose-env` and runs as a subprocess; the main process never imports mediapipe.

    python -m motion.pose.extract_env install     # create or repair the env (needs PyPI and npm once)
    python -m motion.pose.extract_env check       # print the env's python if it is ready

The wheel ships only the full landmark model (`complexity: 1`). Its lite and heavy siblings
(`complexity: 0 | 2`), which the legacy API would fetch from Google's storage at first use, are the very
files Google publishes in the npm package @mediapipe/pose (its full model is byte-identical to the wheel's).
The install takes them from the npm registry, checks their SHA-256 and puts them where mediapipe looks, so
nothing is downloaded when a clip runs. If npm cannot be reached the env still works with the full model.
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
# Landmark model file per `complexity`, and the SHA-256 of the ones taken from npm.
LANDMARK_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite",
                   2: "pose_landmark_heavy.tflite"}
NPM_MODELS = {
    "pose_landmark_lite.tflite": "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
    "pose_landmark_heavy.tflite": "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
}
NPM_PACKAGE = "@mediapipe/pose/-/pose-0.5.1675469404.tgz"
NPM_REGISTRY = "https://registry.npmjs.org/"
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


def model_dir(env_dir: str | os.PathLike | None = None) -> Path | None:
    """mediapipe's pose landmark model folder inside the env (None if mediapipe is not installed)."""
    env = pose_env_dir(env_dir)
    for pattern in ("lib/python*/site-packages", "Lib/site-packages"):
        for site in sorted(env.glob(pattern)):
            folder = site / "mediapipe" / "modules" / "pose_landmark"
            if folder.is_dir():
                return folder
    return None


def has_model(complexity: int, env_dir: str | os.PathLike | None = None) -> bool:
    """True when the landmark model of `complexity` is in the env, so using it downloads nothing."""
    folder = model_dir(env_dir)
    name = LANDMARK_MODELS.get(complexity)
    return bool(folder and name and (folder / name).is_file())


def add_npm_models(folder: Path, *, registry: str | None = None, timeout: float = 120) -> list[str]:
    """Fetch @mediapipe/pose from the npm registry and place its lite and heavy models in `folder`
    (each checked against its pinned SHA-256, written atomically). Returns the names added."""
    import hashlib
    import io
    import tarfile
    import urllib.request

    base = registry or os.environ.get("npm_config_registry") or NPM_REGISTRY
    with urllib.request.urlopen(base.rstrip("/") + "/" + NPM_PACKAGE, timeout=timeout) as response:
        data = response.read()
    blobs = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name, digest in NPM_MODELS.items():
            try:  # read by name: nothing else is unpacked
                member = tar.extractfile(f"package/{name}")
            except KeyError:
                member = None
            blobs[name] = member.read() if member else b""
            if hashlib.sha256(blobs[name]).hexdigest() != digest:
                raise ValueError(f"{name} in {NPM_PACKAGE} does not match its pinned SHA-256")
    for name, blob in blobs.items():  # all checked: now write them
        tmp = folder / f".{name}.part"
        tmp.write_bytes(blob)
        os.replace(tmp, folder / name)
    return list(blobs)


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
    ensure_npm_models(env, say)
    (env / READY_MARK).write_text(MEDIAPIPE + "\n")
    return python


def ensure_npm_models(env_dir=None, say=None) -> bool:
    """Add the lite and heavy models to the env unless they are there; False (said, not raised) if npm
    cannot be reached: they are optional, the full model in the wheel still works."""
    say = say or (lambda msg: print(msg, file=sys.stderr))
    folder = model_dir(env_dir)
    if folder is None:
        return False
    if all((folder / name).is_file() for name in NPM_MODELS):
        return True
    say(f"pose-env: adding the lite and heavy models from npm {NPM_PACKAGE}")
    try:
        add_npm_models(folder)
    except Exception as exc:  # noqa: BLE001 - any network or archive failure means "not added"
        say(f"pose-env: the lite and heavy models were not added ({exc}); complexity 1 works, "
            f"0 and 2 need `python -m motion.pose.extract_env install` again with npm reachable")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    what = args[0] if args else "check"
    if what == "install":
        started = time.monotonic()
        python = ensure_pose_env()
        ensure_npm_models()  # an env made before they were added, or when npm was not reachable
        print(f"{python} (ready in {time.monotonic() - started:.0f}s)")
        return 0
    if what == "check":
        python = pose_env_python()
        if python:
            models = [str(c) for c in LANDMARK_MODELS if has_model(c)]
            print(f"{python} (complexity {', '.join(models)})")
        else:
            print(f"not installed: {pose_env_dir()}")
        return 0 if python else 1
    print("usage: python -m motion.pose.extract_env [install|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
