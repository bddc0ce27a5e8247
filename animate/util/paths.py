"""Home expansion that never raises: `~user` where no such user exists (or no home is known) stays as written,
so it is reported as a missing file, not a traceback."""
from __future__ import annotations

from pathlib import Path


def expand_home(path: str | Path) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # Path.expanduser: "Could not determine home directory"
        return Path(path)
