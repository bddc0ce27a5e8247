"""The frame store: every clip's rendered frames, kept losslessly once per render key under the output root
(`<out>/.frames/<render key>.npz`). Every output, the reel, `animate encode` from a sidecar and the gallery
read frames from here, so changing outputs never re-renders and never re-encodes from a lossy file."""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from animate.util.atomic import atomic_file
from animate.outputs.layout import STORE_DIR

_KEY = re.compile(r"[0-9a-f]{16,64}")


class FrameStore:
    def __init__(self, out_root: str | os.PathLike):
        self.root = Path(out_root) / STORE_DIR

    def path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):  # keys are hashes; never a path
            raise ValueError(f"not a render key: {key!r}")
        return self.root / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, key: str, frames: np.ndarray, meta: dict | None = None) -> Path:
        """Store uint8 F×H×W×3 frames atomically (zlib-compressed, lossless): the file `np.savez_compressed`
        writes, `np.load` reads, written a frame at a time (numpy copies up to 16 MiB of the array at once, which
        for a long clip is a copy of all of it)."""
        frames = np.asarray(frames, dtype=np.uint8)
        dest = self.path(key)
        with atomic_file(dest) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                with zf.open("frames.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array_header_2_0(fh, np.lib.format.header_data_from_array_1_0(frames))
                    for frame in frames:
                        fh.write(np.ascontiguousarray(frame).data)
                with zf.open("meta.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.array(json.dumps(meta or {}, default=str)))
        return dest

    def load(self, key: str) -> np.ndarray | None:
        """The stored frames, or None when absent or unreadable (a torn or foreign file is re-rendered)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                frames = data["frames"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            return None
        return frames

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.npz") if _KEY.fullmatch(p.stem))

    def size(self) -> tuple[int, int]:
        """(entries, bytes) held by the store."""
        sizes = [size for size in map(self._size, self.keys()) if size is not None]
        return len(sizes), sum(sizes)

    def _size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:  # pruned by another process since `keys()` listed it
            return None

    def prune(self, keep: set[str], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every entry whose key is not in `keep`; return (entries, bytes) removed."""
        count = freed = 0
        for key in self.keys():
            if key in keep:
                continue
            path, size = self.path(key), self._size(key)
            if size is None:
                continue
            freed += size
            count += 1
            if not dry_run:
                path.unlink(missing_ok=True)
        return count, freed


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
