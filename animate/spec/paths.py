"""Paths a script names, resolved against the script's folder (`~` expanded where the home is known)."""
from __future__ import annotations
from pathlib import Path

from animate.util.paths import expand_home


def local_path(base_dir: Path, value: str, exists=Path.exists) -> tuple[str, bool]:
    """A path a script names, against the script's folder: (the path as text, resolved when it exists; whether
    `exists` holds for it)."""
    path = base_dir / expand_home(value)
    try:
        found = exists(path)
    except (OSError, ValueError):  # a path the system cannot even look at (too long, bad bytes)
        found = False
    return (str(path.resolve()) if found else str(path)), found
