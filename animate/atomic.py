"""Atomic writes: a temp name in the destination folder, renamed into place only when complete."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

PART = ".part"


def _temp_name(dest: Path) -> Path:
    # Keep the real suffix last so tools that sniff extensions (ffmpeg, Pillow) still work.
    return dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}{PART}{dest.suffix}")


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `dest`; on success fsync and rename it onto `dest`, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `dest`; on success replace `dest` with it, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}{PART}")
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old{PART}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_partials(root: str | os.PathLike) -> int:
    """Delete temp files and folders left by an interrupted run under `root`; return how many."""
    count = 0
    root = Path(root)
    if not root.exists():
        return 0
    for path in sorted(root.rglob(f"*{PART}*"), key=lambda p: len(p.parts), reverse=True):
        if PART not in path.name or not path.name.startswith("."):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        count += 1
    return count
