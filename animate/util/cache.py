"""Where built and cached artefacts live: $ANIMATE_CACHE, else ~/.cache/animate."""
from __future__ import annotations
import os
from pathlib import Path


def cache_root() -> Path:
    """Where built artefacts live: $ANIMATE_CACHE, else ~/.cache/animate."""
    env = os.environ.get("ANIMATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "animate"
