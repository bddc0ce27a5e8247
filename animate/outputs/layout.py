"""Output paths, sidecars and the manifest: where each clip goes and the record of how it was made.

Layout (design.md, Outputs): `<out>/<script stem>/<clip>[-s<seed>].<ext>`, a PNG sequence as the folder
`<clip>[-s<seed>]/`, the sidecar `<clip>[-s<seed>].json`, and per script `manifest.jsonl` and `index.html`.
"""
from __future__ import annotations

import datetime as _dt
import enum
import functools
import hashlib
import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from animate.util.atomic import atomic_file, sweep_partials
from animate.errors import ConfigError, OutputError
from animate.util.hashing import file_sha256  # noqa: F401  (the one hasher; sidecars and callers import it here)
from animate.util.names import NAME, NAME_RULE, STEM_RE, reserved_name, slug

_EXT = re.compile(r"[a-z0-9]{1,8}")


# Every name under the output root, here and nowhere else: per script, the manifest, gallery and previews beside
# the clips; per root, the frame store, the claims and the web app's folder (uploads, jobs), never served.
MANIFEST_NAME = "manifest.jsonl"
GALLERY_NAME = "index.html"
PREVIEW_DIR = ".previews"
STORE_DIR = ".frames"
CLAIMS_DIR = ".claims"
SERVE_DIR = Path(".serve")
UPLOADS_DIR = SERVE_DIR / "uploads"
JOBS_DIR = SERVE_DIR / "jobs"
INTERNAL_DIRS = frozenset({STORE_DIR, CLAIMS_DIR, str(SERVE_DIR)})  # under the output root, never served
# Keys of a resolved spec that describe a run, not the clip: they never change the spec hash.
VOLATILE_KEYS = frozenset({"timings", "packages", "device", "created", "host", "spec_hash"})
PACKAGES = ("torch", "diffusers", "transformers", "peft", "numpy", "animate")


def safe_name(name: str) -> str:
    """Return `name` unchanged if it is a valid clip name, else raise ConfigError saying how to fix it."""
    if isinstance(name, str) and re.fullmatch(NAME, name) and name not in (".", "..") and not reserved_name(name):
        return name
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    raise ConfigError(f"clip name {shown} is not allowed",
                      hint=f"{NAME_RULE}, for example {slug(str(name), limit=64)!r}")


def _inside(path: Path, root: Path) -> Path:
    # Resolve symlinks first: a link inside the root may point anywhere.
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError(f"output path {str(path)!r} resolves to {str(resolved)!r}, outside {str(root)!r}",
                          hint="remove the symlink or choose another --out")
    return resolved


class OutputLayout:
    """Every path of one script's outputs, each checked to stay inside `<out>/<script stem>/`."""

    def __init__(self, root: str | os.PathLike, script_stem: str):
        stem = str(script_stem)
        if (not stem or stem in (".", "..") or "/" in stem or "\\" in stem or "\0" in stem
                or Path(stem).is_absolute() or reserved_name(stem)):
            raise ConfigError(f"script name {stem!r} cannot be used as an output folder",
                              hint="rename the script file")
        self.out = Path(root)
        self.root = self.out / stem
        self.script_stem = stem
        self._check_links()

    def _check_links(self) -> None:
        """Refuse, before anything is written, a symlink planted in the output folder that leads out of it:
        the script folder, the frame store and claims under --out, the manifest, gallery and previews."""

        out = self.out.resolve()
        for path in (self.root, self.out / STORE_DIR, self.out / CLAIMS_DIR):
            _inside(path, out)
        root = self.root.resolve()
        for name in (MANIFEST_NAME, GALLERY_NAME, PREVIEW_DIR):
            _inside(self.root / name, root)
        for folder in (self.root, self.out / STORE_DIR, self.out / CLAIMS_DIR):
            if folder.exists() and not folder.is_dir():
                raise OutputError(f"{folder} is a file, but the outputs need a folder there", where=f"--out {self.out}",
                                  hint="move the file away, or choose another --out")

    @property
    def resolved_root(self) -> Path:
        return self.root.resolve()

    def prepare(self) -> int:
        """Create the folder and delete temp files of an interrupted run; return how many were swept."""
        self.root.mkdir(parents=True, exist_ok=True)
        return sweep_partials(self.root)

    @staticmethod
    def stem(clip: str, seed: int, multi_seed: bool) -> str:
        """`clip`, or `clip-s<seed>` when the clip renders several seeds."""
        safe_name(clip)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed {seed!r} of clip {clip!r} is not an integer", hint="use a whole number")
        return f"{clip}-s{seed}" if multi_seed else clip

    def _checked_stem(self, stem: str) -> str:
        if not isinstance(stem, str) or not STEM_RE.fullmatch(stem):
            raise ConfigError(f"output stem {stem!r} is not allowed", hint=NAME_RULE)
        return stem

    def _path(self, name: str) -> Path:
        return _inside(self.root / name, self.resolved_root)

    def file(self, stem: str, ext: str) -> Path:
        """The output file of one format; `ext` comes from the encoder, never from the script."""
        if not isinstance(ext, str) or not _EXT.fullmatch(ext):
            raise ConfigError(f"output extension {ext!r} is not allowed", hint="use a-z 0-9, at most 8")
        return self._path(f"{self._checked_stem(stem)}.{ext}")

    def folder(self, stem: str) -> Path:
        """The folder of a PNG sequence."""
        return self._path(self._checked_stem(stem))

    def sidecar(self, stem: str) -> Path:
        return self._path(f"{self._checked_stem(stem)}.json")

    @property
    def manifest(self) -> Path:
        return self._path(MANIFEST_NAME)

    @property
    def gallery(self) -> Path:
        return self._path(GALLERY_NAME)

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the root, in forward slashes (for the manifest and the gallery)."""
        return _inside(Path(path), self.resolved_root).relative_to(self.resolved_root).as_posix()


def _json_default(value: Any) -> Any:
    # Resolved specs hold paths, tuples, enums and pydantic models; give each one stable JSON form.
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, floats as repr: equal specs give equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def hash_resolved(resolved: dict) -> str:
    """A stable hash of a resolved clip spec, ignoring run-only keys (timings, device, versions)."""
    kept = {k: v for k, v in resolved.items() if k not in VOLATILE_KEYS}
    return hashlib.sha256(canonical_json(kept).encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a clip (None where one is missing)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str | None]:
    # Read once a process: metadata lookups cost ~20 ms a sidecar, and packages don't change under a run.
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_sidecar(resolved: dict, *, models: dict, device: str, timings: dict, spec_hash: str | None = None,
                  **extra: Any) -> dict:
    """The sidecar record: resolved spec and its hash (the manifest's, when the caller has it), model sources,
    package versions, device, timings."""
    return {
        "spec": resolved,
        "spec_hash": spec_hash or hash_resolved(resolved),
        "models": models,
        "packages": package_versions(),
        "device": device,
        "timings": timings,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def write_sidecar(path: str | os.PathLike, data: dict) -> Path:
    """Write `data` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def measure(path: str | os.PathLike) -> int:
    """Bytes of a file, or of all files under a folder (a PNG sequence)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


try:
    import fcntl as _fcntl
except ImportError:  # Windows: appends of one process stay safe; concurrent writers are not locked
    _fcntl = None


class Manifest:
    """Append-only JSON lines, one per finished output: {"key", "spec_hash", "files": [{"path", "size"}]}.

    The key names one output; its path relative to the root ("castle-s42.gif", "castle" for a PNG
    sequence) is unique and readable. File paths are stored relative to the manifest's folder.

    The caller appends only after the output's atomic rename, so a line means "this output is complete".
    A crash can tear the last line; readers skip lines that do not parse, and the next append starts
    on a fresh line so it is never glued onto a torn one.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.folder = self.path.parent
        self.skipped = 0  # unparsable lines seen by the last read (torn writes)
        self._cache: tuple[tuple[int, int], dict[str, dict]] | None = None

    def append(self, entry: dict) -> None:
        if not isinstance(entry.get("key"), str) or not isinstance(entry.get("spec_hash"), str):
            raise ValueError("a manifest entry needs a str 'key' and a str 'spec_hash'")
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        data = (line + "\n").encode("utf-8")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if _fcntl is not None:
                _fcntl.flock(fd, _fcntl.LOCK_EX)  # Ray workers may share one manifest
            size = os.fstat(fd).st_size
            if size and os.lseek(fd, size - 1, os.SEEK_SET) >= 0 and os.read(fd, 1) != b"\n":
                data = b"\n" + data  # the last line was torn: keep it apart from ours
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        self._cache = None

    def record(self, key: str, spec_hash: str, files: Iterable[str | os.PathLike], **extra: Any) -> dict:
        """Measure `files` (complete, in place) and append their entry; return it."""
        entry = {"key": key, "spec_hash": spec_hash,
                 "files": [{"path": self._relative(f), "size": measure(self._absolute(f))} for f in files],
                 "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
        self.append(entry)
        return entry

    def entries(self) -> dict[str, dict]:
        """The latest entry per key."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_size, st.st_mtime_ns)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        latest: dict[str, dict] = {}
        skipped = 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    skipped += 1
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    latest[entry["key"]] = entry
                else:
                    skipped += 1
        self.skipped = skipped
        self._cache = (stamp, latest)
        return latest

    def is_done(self, key: str, spec_hash: str, files: Iterable[str | os.PathLike] | None = None) -> bool:
        """True only if `key` was finished with this spec hash and every file (default: every recorded
        file) still exists with the size recorded."""
        entry = self.entries().get(key)
        if not entry or entry.get("spec_hash") != spec_hash:
            return False
        recorded = {f.get("path"): f.get("size") for f in entry.get("files", []) if isinstance(f, dict)}
        try:
            wanted = [self._relative(f) for f in files] if files else list(recorded)
        except ValueError:  # a file outside the manifest's folder was never recorded here
            return False
        if not wanted:
            return False
        for rel in wanted:
            path = self.folder / rel
            if rel not in recorded or not path.exists():
                return False
            try:
                if measure(path) != recorded[rel]:
                    return False
            except OSError:
                return False
        return True

    def _absolute(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.folder / path

    def _relative(self, path: str | os.PathLike) -> str:
        # Entries store paths relative to the manifest's folder, so the output folder can be moved.
        return self._absolute(path).resolve().relative_to(self.folder.resolve()).as_posix()


