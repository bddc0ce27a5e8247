"""animate.spec.paths."""
from __future__ import annotations
from pathlib import Path


def local_path(base_dir: Path, value: str, exists=Path.exists) -> tuple[str, bool]:
    """A path a script names, against the script's folder: (the path as text, resolved when it exists; whether
    `exists` holds for it)."""
    path = base_dir / Path(value).expanduser()
    try:
        found = exists(path)
    except (OSError, ValueError):  # a path the system cannot even look at (too long, bad bytes)
        found = False
    return (str(path.resolve()) if found else str(path)), found
