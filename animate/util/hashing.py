"""Content hashes: the one SHA-256 hasher of local files and folders (render keys, `sha256:` pins, sidecars, the
reel's audio).

A file is read once per content: its digest is cached by (real path, size, mtime_ns, inode) in memory and in
`<cache>/sha256-v1.json` ($ANIMATE_CACHE, else ~/.cache/animate), which every process on the machine shares. The
file is rewritten whole, atomically, under a lock, merging what other processes added; a corrupt or unreadable cache
is ignored and rebuilt, and an unwritable one only costs re-hashing. A folder's digest is that of its listing, the
same as `cd FOLDER && find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`: its files'
relative names and contents count, never where the folder is.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path

from animate.util.atomic import atomic_file, file_lock
from animate.util.cache import cache_root

CACHE_NAME = "sha256-v1.json"
MAX_ENTRIES = 20_000  # paths remembered (~3 MB); the least recently hashed are dropped first
# A file changed this close before it was hashed could change again within the same mtime tick (2 s on FAT) with
# the same size and inode: its digest is not remembered (git's "racily clean" entries).
RACY_NS = 2_000_000_000
_CHUNK = 1 << 20
_HEX = re.compile(r"^[0-9a-f]{64}$")


def cache_file() -> Path:
    return cache_root() / CACHE_NAME


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _valid(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 4 and all(type(v) is int for v in entry[:3])
            and isinstance(entry[3], str) and bool(_HEX.match(entry[3])))


def _read(path: Path) -> dict[str, list]:
    """The cache's entries (real path → [size, mtime_ns, inode, sha256]); {} when missing or corrupt."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"] if data.get("version") == 1 else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and _valid(v)} if isinstance(files, dict) else {}


class _Digests:
    """Known digests in memory, backed by the shared cache file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, list] = {}
        self._pending: dict[str, list] = {}
        self._seen: tuple | None = None  # the cache file's path and stamp when last read

    def lookup(self, real: str, stamp: list[int]) -> str | None:
        with self._lock:
            entry = self._known.get(real)
        if entry is None or entry[:3] != stamp:
            self._reload()  # another process may have hashed it meanwhile
            with self._lock:
                entry = self._known.get(real)
        return entry[3] if entry is not None and entry[:3] == stamp else None

    def _reload(self) -> None:
        path = cache_file()
        try:
            seen = (str(path), *_stamp(path.stat()))
        except OSError:
            return
        with self._lock:
            if seen == self._seen:
                return
        entries = _read(path)
        with self._lock:
            self._seen = seen
            self._known.update({real: entry for real, entry in entries.items() if real not in self._pending})

    def add(self, real: str, stamp: list[int], digest: str) -> None:
        with self._lock:
            self._known[real] = self._pending[real] = [*stamp, digest]

    def flush(self) -> None:
        """Merge this process's new digests into the cache file (atomically, under its lock)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        path = cache_file()
        try:
            with file_lock(path.with_suffix(".lock")):
                entries = _read(path)
                for real, entry in pending.items():
                    entries.pop(real, None)  # re-inserted last: the newest survive trimming
                    entries[real] = entry
                kept = dict(list(entries.items())[-MAX_ENTRIES:])
                with atomic_file(path) as tmp:
                    tmp.write_text(json.dumps({"version": 1, "files": kept}, separators=(",", ":")),
                                   encoding="utf-8")
        except OSError:
            pass  # a read-only or full cache folder: the digests stay known to this process only


_digests = _Digests()


def _file_digest(path: str | os.PathLike) -> str:
    real = os.path.realpath(path)
    stamp = _stamp(os.stat(real))
    known = _digests.lookup(real, stamp)
    if known is not None:
        return known
    started = time.time_ns()
    digest = hashlib.sha256()
    with open(real, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    text = digest.hexdigest()
    # Remembered only when the file did not change while it was read, nor just before.
    if _stamp(os.stat(real)) == stamp and stamp[1] + RACY_NS <= started:
        _digests.add(real, stamp, text)
    return text


def _folder_files(folder: Path) -> list[str]:
    """Every file under `folder` as `./relative/name`, links followed (a link back to an ancestor is skipped,
    as `find -L` skips a loop)."""
    top = str(folder)
    chains = {top: {os.path.realpath(top)}}
    names = []
    for root, dirs, files in os.walk(top, followlinks=True):
        chain = chains.pop(root)
        kept = []
        for name in dirs:
            real = os.path.realpath(os.path.join(root, name))
            if real not in chain:
                kept.append(name)
                chains[os.path.join(root, name)] = chain | {real}
        dirs[:] = kept
        names += [os.path.join(root, name) for name in files if os.path.isfile(os.path.join(root, name))]
    return sorted("./" + Path(name).relative_to(folder).as_posix() for name in names)


def _folder_digest(folder: str | os.PathLike) -> str:
    folder = Path(folder)
    if not folder.is_dir():  # os.walk would list a missing folder as an empty one
        raise FileNotFoundError(f"no such file or folder: {str(folder)!r}")
    listing = "".join(f"{_file_digest(folder / name[2:])}  {name}\n" for name in _folder_files(folder))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (`sha256sum FILE`), read once per content and cached."""
    try:
        return _file_digest(path)
    finally:
        _digests.flush()


def folder_sha256(folder: str | os.PathLike) -> str:
    """One digest of every file in a folder: its listing, as
    `cd FOLDER && find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum` prints it."""
    try:
        return _folder_digest(folder)
    finally:
        _digests.flush()


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's files (their relative names and contents)."""
    return file_sha256(path) if Path(path).is_file() else folder_sha256(path)


def content_hash_or_none(path: str | os.PathLike) -> str | None:
    """`content_hash`, or None when the path cannot be read (whatever loads it later reports why)."""
    try:
        return content_hash(path)
    except OSError:
        return None


def source_identity(source: dict | None) -> dict | None:
    """A source as far as frames care: a hub id with its revision and file, or a local source's content, never its
    path (nor its file's name). A `sha256` pin only guards the same bytes and `role` is a registry hint, so adding
    either re-renders nothing; a local `config:` folder counts by its content too."""
    if source is None:
        return None
    data = {k: v for k, v in source.items() if k not in ("sha256", "role")}
    if data["kind"] != "hub":
        ref, name = Path(data.pop("ref")), data.pop("weight_name", None)
        data["content"] = content_hash_or_none(ref / name if name else ref)
    config = data.get("config")
    if config and Path(config).is_absolute():  # resolution made a local config folder absolute; a hub id is not
        data["config"] = {"content": content_hash_or_none(config)}
    return data
