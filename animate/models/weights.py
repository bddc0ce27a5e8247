"""Checks on local model files before anything loads them: `sha256:` pins, the `.safetensors` header (read as
plain bytes and JSON, so a hostile file allocates nothing), and pickles (only when allowed) through
`torch.load(weights_only=True)`, which refuses any object that is not tensors and plain containers."""
from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path

from animate.errors import ModelError
from animate.util.hashing import file_sha256 as file_digest
from animate.util.hashing import folder_sha256 as folder_digest
from animate.models.sources import PICKLE_SUFFIXES
from animate.models.sources import hub_snapshot
import zipfile

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_TENSORS = 100_000  # an SD1.5 checkpoint holds ~1,100; an SDXL one ~2,500
MAX_DIMS = 8
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


# ---------------------------------------------------------------- sha256 pins

def _files(folder: Path):
    for root, _, names in os.walk(folder, followlinks=True):
        for name in names:
            path = Path(root) / name
            if path.is_file():
                yield path


def source_digest(src) -> str:
    """What a `sha256:` pin of a local source is compared with: its file (or `weight_name` in its folder), or
    the whole folder."""
    local = src.local_file()
    return file_digest(local) if local is not None else folder_digest(src.ref)


def check_pin(src, field: str) -> None:
    """Refuse a pinned local source whose content is not the pinned one, naming both digests."""
    if not getattr(src, "sha256", None):
        return
    actual = source_digest(src)
    if actual != src.sha256:
        what = "file" if src.local_file() is not None else "folder"
        raise ModelError(f"{src.describe()}: sha256 does not match the pin: expected {src.sha256}, got {actual}",
                         where=field, hint=f"the {what} changed since it was pinned; get the pinned one back, or "
                                           "pin the new digest if you trust it")


# ---------------------------------------------------------------- .safetensors headers

def parameter_count(path: str | os.PathLike, prefix: str = "") -> int | None:
    """How many numbers a .safetensors file holds in tensors named `prefix...` (its header only), or None when it
    cannot be read."""
    try:
        size, length, raw = _header_bytes(Path(path))
        if size < 8 or raw is None:
            return None
        header = json.loads(raw)
        return sum(math.prod(info.get("shape") or []) for name, info in header.items()
                   if name != "__metadata__" and name.startswith(prefix) and isinstance(info, dict))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _header_bytes(path: Path) -> tuple[int, int, bytes | None]:
    """(file size, the header length the file claims, the header's bytes; None when that length is over the limit
    or past the file's end). Nothing else of the file is read."""
    size = path.stat().st_size
    if size < 8:
        return size, 0, None
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(length) if length <= min(MAX_HEADER_BYTES, size - 8) else None
    return size, length, raw


def check_safetensors_header(path: str | os.PathLike, field: str | None = None) -> int:
    """Read and judge a .safetensors header without allocating any tensor: its length, JSON, tensor count,
    dtypes, shapes and byte ranges against the file's size. Returns the tensor count."""
    path = Path(path)

    def bad(why: str) -> ModelError:
        return ModelError(f"{path} is not a safe .safetensors file: {why}", where=field,
                          hint="download it again, or get it from a source you trust")

    size, length, raw = _header_bytes(path)
    if size < 8:
        raise bad(f"it is {size} bytes, too short for a header")
    if length > MAX_HEADER_BYTES:
        raise bad(f"its header claims {length} bytes (at most {MAX_HEADER_BYTES} allowed)")
    if length > size - 8:
        raise bad(f"its header claims {length} bytes but the file holds only {size - 8} after the length")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if len(tensors) > MAX_TENSORS:
        raise bad(f"it declares {len(tensors)} tensors (at most {MAX_TENSORS} allowed)")
    data_bytes, ranges = size - 8 - length, []
    for name, info in tensors.items():
        shown = name[:80]
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {shown!r} is not described by dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise bad(f"tensor {shown!r} has dtype {str(dtype)[:20]!r}, which safetensors does not define")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise bad(f"tensor {shown!r} has shape {str(shape)[:60]} (at most {MAX_DIMS} non-negative sizes)")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise bad(f"tensor {shown!r} has data_offsets {str(offsets)[:60]}")
        start, end = offsets
        count = 1
        for d in shape:
            count *= d
        if not 0 <= start <= end <= data_bytes:
            raise bad(f"tensor {shown!r} lies at bytes {start}-{end}, outside the {data_bytes} data bytes")
        if end - start != count * DTYPE_BYTES[dtype]:
            raise bad(f"tensor {shown!r} ({dtype} {shape}) needs {count * DTYPE_BYTES[dtype]} bytes but "
                      f"spans {end - start}")
        ranges.append((start, end, shown))
    ranges.sort()
    for (_, end, first), (start, _, second) in zip(ranges, ranges[1:]):
        if start < end:
            raise bad(f"tensors {first!r} and {second!r} overlap")
    return len(tensors)


def safetensors_files(src) -> list[Path]:
    """The local .safetensors files a source loads: its file, its `weight_name`, or every one in its folder; for
    a hub source, those already in the local hub cache (one not downloaded yet is checked by the hub client's
    safetensors loader only)."""
    if src.kind == "hub":
        snapshot = hub_snapshot(src)
        if snapshot is None:
            return []
        files = [snapshot / src.weight_name] if src.weight_name else list(_files(snapshot))
        return sorted(p for p in files if p.suffix == ".safetensors" and p.is_file())
    local = src.local_file()
    if local is not None:
        return [local] if local.suffix == ".safetensors" else []
    return sorted(p for p in _files(Path(src.ref)) if p.suffix == ".safetensors")


def check_weights(src, field: str) -> None:
    """Everything knowable about a local source's files before loading: its pin, then its headers."""
    check_pin(src, field)
    for path in safetensors_files(src):
        check_safetensors_header(path, field)


# ---------------------------------------------------------------- pickles (only with allow_pickle)

def pickle_file(src) -> Path | None:
    """The local pickle file a source loads, if it is one."""
    local = src.local_file()
    return local if local is not None and local.suffix.lower() in PICKLE_SUFFIXES else None


def check_pickle(path: str | os.PathLike, field: str | None = None) -> None:
    """Unpickle with `weights_only=True` (never anything else) before any library loads the file: an object
    that is not tensors, numbers and containers (code, a class to build) is refused, not run."""

    import torch  # torch stack: kept out of light commands

    try:
        # mmap maps the tensor bytes of a zip-format checkpoint instead of reading them all in.
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001  UnpicklingError, and whatever a damaged file makes torch raise
        first = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported" in ln or "global" in ln.lower()),
                     str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ModelError(f"{path} is refused: loading it with weights_only=True failed ({first[:200]})",
                         where=field, hint="a checkpoint that needs more than tensors to load can run code; "
                                           "convert a trusted one to .safetensors") from None




def read_safetensors_keys(path: str | os.PathLike) -> list[str]:
    """Tensor names of a .safetensors file, reading only its header (judged first: animate.models.weights)."""
    from safetensors import safe_open  # torch stack: kept out of light commands

    check_safetensors_header(path)

    try:
        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    except Exception as exc:  # a truncated or non-safetensors file
        raise ModelError(f"{path} is not a readable .safetensors file ({exc})") from exc
