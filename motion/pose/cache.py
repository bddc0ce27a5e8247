"""Cache extracted keypoints and drawn pose frames by content hash, so a re-run neither extracts nor draws.

Keys hash the bytes of the source file(s) (not names or dates: a re-exported identical video still hits,
an edited one misses) together with every option that changes the result.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

CACHE_VERSION = 3  # bump when the layout of cache entries changes


def code_fingerprint(*files: Path) -> str:
    """A short hash of source files, put into keys so that a changed pipeline never reads stale results."""
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: `cache_dir`, else $ANIMATE_CACHE, else ~/.cache/animate."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("ANIMATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "animate"


def hash_source(source) -> str:
    """sha256 of a file, of a folder's files (names and bytes, in order), or of a JSON-able value."""
    digest = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        path = Path(source)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            digest.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    else:
        digest.update(json.dumps(source, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cache_key(source_hash: str, **options) -> str:
    """A short key for a source hash plus options."""
    blob = json.dumps({"v": CACHE_VERSION, "src": source_hash, **options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _atomic_write(dest: Path, write) -> None:
    # Same idea as animate.util.atomic (which motion may not import): temp name, then rename into place.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.part{dest.suffix}")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def load_frames(path: Path) -> list[np.ndarray] | None:
    """Cached frames, or None when absent or unreadable (a broken entry is recomputed)."""
    try:
        with np.load(path) as data:
            return list(data["frames"])
    except (OSError, KeyError, ValueError):
        return None


def save_frames(path: Path, frames: list[np.ndarray]) -> None:
    """Store frames compressed (skeletons are mostly black, so they shrink a lot)."""
    _atomic_write(path, lambda tmp: np.savez_compressed(tmp, frames=np.stack(frames)))


def load_json(path: Path):
    """A cached JSON value, or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save_json(path: Path, value) -> None:
    """Store a JSON value atomically."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value)))
