"""Atomic writes: a temp name in the destination folder, renamed into place only when complete.

A temp name carries its writer (a host tag and the pid), so the start-of-run sweep deletes only the temp files
of writers that are gone: another process writing into the same folder keeps its files."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator
from animate.util.hosts import pid_alive, this_host

PART = ".part"
# A temp file whose writer can't be checked (another host, an older version) is swept once it is this old.
FOREIGN_AGE_S = 24 * 3600
_WRITER = re.compile(r"\.w([0-9a-f]{6})-(\d+)-[0-9a-f]{8}\.")


def _host_tag() -> str:
    return hashlib.sha1(this_host().encode()).hexdigest()[:6]


def _writer() -> str:
    return f"w{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _temp_name(dest: Path) -> Path:
    # Keep the real suffix last so tools that sniff extensions (ffmpeg, Pillow) still work.
    return dest.with_name(f".{dest.stem}.{_writer()}{PART}{dest.suffix}")


def temp_beside(dest: str | os.PathLike) -> Path:
    """A temp name beside `dest` in the form `sweep_partials` knows, for a writer that learns its destination
    only once it has written (a content-addressed file); publish it with `publish`."""
    return _temp_name(Path(dest))


def publish(tmp: str | os.PathLike, dest: str | os.PathLike) -> None:
    """fsync the finished temp file `tmp` and rename it onto `dest` (its folder made if missing)."""
    dest = Path(dest)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


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
        publish(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs, so two processes that both
    find something missing build it once. Without fcntl (Windows) it does not exclude: the build is atomic anyway."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `dest`; on success replace `dest` with it, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{_writer()}{PART}")
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{_writer()}.old{PART}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _writer_gone(path: Path) -> bool:
    m = _WRITER.search(path.name)
    if m and m.group(1) == _host_tag():
        return not pid_alive(int(m.group(2)))
    try:
        return time.time() - path.lstat().st_mtime > FOREIGN_AGE_S
    except FileNotFoundError:
        return False


def sweep_partials(root: str | os.PathLike) -> int:
    """Delete temp files and folders under `root` left by writers that no longer run; return how many."""
    count = 0
    root = Path(root)
    if not root.exists():
        return 0
    for path in sorted(root.rglob(f"*{PART}*"), key=lambda p: len(p.parts), reverse=True):
        if PART not in path.name or not path.name.startswith(".") or not _writer_gone(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        count += 1
    return count
