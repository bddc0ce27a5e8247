"""The one rule for names that become files (clip names, stems, output folders) and the one slug."""
from __future__ import annotations

import re

# Names Windows keeps for devices, with any extension (`nul.gif` opens the null device there), compared
# case-insensitively; a trailing dot is dropped by Windows, so `a.` and `a` would be one file.
WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})


def reserved_name(name: str) -> str | None:
    """Why `name` cannot be a file name on every system (Windows device names, a trailing dot), or None."""
    if name.split(".", 1)[0].lower() in WINDOWS_RESERVED:
        return f"{name.split('.', 1)[0]!r} is a device name on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9)"
    if name.endswith("."):
        return "a name cannot end in '.' (Windows drops it)"
    return None


NAME = r"[a-z0-9][a-z0-9._-]{0,63}"
NAME_RE = f"^{NAME}$"
# A stem is a clip name plus an optional seed suffix, so it may be a little longer than a name.
STEM_RE = re.compile(NAME + r"(-s-?[0-9]{1,20})?")
NAME_RULE = "use 1-64 characters from a-z 0-9 . _ - starting with a letter or digit"


def slug(text: str, limit: int = 40) -> str:
    """A safe clip name from free text."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "clip"
