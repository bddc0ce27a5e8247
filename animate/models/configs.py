"""The one reader of a model source's small config files (model_index.json, unet/config.json, config.json,
scheduler/scheduler_config.json), without loading a model, in one order: the source's own folder, its `config:`
folder (or hub id), the hub cache, and last the hub itself where it answers (a few KB)."""
from __future__ import annotations

import json
from pathlib import Path

from animate.models.sources import HUB_ID, Source, hub_offline, hub_unreachable


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hub_file(repo: str, filename: str, revision: str | None) -> str | None:
    """A small file of a hub repo: from the cache, else downloaded where the hub answers; None otherwise."""
    from huggingface_hub import try_to_load_from_cache  # hub client: slow to import, loaded on use

    try:
        found = try_to_load_from_cache(repo, filename, revision=revision)
    except (OSError, ValueError):
        found = None
    if isinstance(found, str):
        return found
    if hub_offline() or hub_unreachable() is not None:
        return None
    from huggingface_hub import constants, hf_hub_download  # hub client: slow to import, loaded on use

    try:  # the endpoint the probe answered (HF_ENDPOINT)
        return hf_hub_download(repo, filename, revision=revision, endpoint=constants.ENDPOINT)
    except Exception:  # noqa: BLE001  no such file in the repo, gated, a transport error: not readable
        return None


def find_config(src: Source, filename: str) -> tuple[dict, str] | None:
    """(`filename`'s JSON, the file it was read from) for a model source, or None where nothing readable has it."""
    candidates: list[str | Path | None] = []
    if src.kind == "folder":
        candidates.append(Path(src.ref) / filename)
    if src.config:
        if Path(src.config).is_dir():
            candidates.append(Path(src.config) / filename)
        elif HUB_ID.match(src.config):
            candidates.append(_hub_file(src.config, filename, None))
    if src.kind == "hub":
        candidates.append(_hub_file(src.ref, filename, src.revision))
    for path in candidates:
        data = read_json(Path(path)) if path else None
        if data is not None:
            return data, str(path)
    return None


def read_config(src: Source, filename: str) -> dict | None:
    """`filename` (e.g. unet/config.json) of a base, adapter or ControlNet, or None."""
    found = find_config(src, filename)
    return found[0] if found else None
