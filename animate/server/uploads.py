"""`POST /api/uploads`: a pose video, an init video, a keyframe image or an OpenPose .json sent as the raw request
body, stored content-addressed under `<out>/.serve/uploads/<sha256[:16]>/<name>` so that a script submitted to the
same server can name it (that folder counts as an input root for input files; nothing else under the output root
does). The body goes to a temp file beside the uploads (never into memory), hashed on the way, and is renamed
into place once complete: the same bytes under the same name land on the same path, written once."""
from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from pathlib import Path

from animate.util.atomic import publish, temp_beside
from animate.errors import ConfigError
from animate.run.limits import Limits, amount
from animate.util.names import reserved_name
from animate.server.config import ServeConfig
from motion.pose.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

HASH_CHARS = 16  # the folder: the first 16 hex digits of the content's SHA-256
MAX_STEM = 80  # characters of the stored name before its extension


def suffixes() -> dict[str, list[str]]:
    """The extensions an upload may have, by kind (the ones pose, init_video and keyframes read)."""

    return {"video": list(VIDEO_SUFFIXES), "image": list(IMAGE_SUFFIXES), "json": [".json"]}


def checked_name(name: str | None) -> tuple[str, str]:
    """(the name the file is stored under, its kind: video, image or json) for the `name` a client gave; a name
    that is no plain file name, or of a kind nothing reads, is a ConfigError naming the field, value and fix."""
    if not name or not name.strip():
        raise ConfigError("missing (the uploaded file's name, which says its kind)", where="name",
                          hint="POST /api/uploads?name=dance.mp4 with the file as the body")
    if any(c in name for c in "/\\") or ".." in name or name.startswith(".") or \
            any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"must be a plain file name, without folders, '..', a leading '.' or control characters "
                          f"(got {name!r})", where="name", hint="send the file's own name, e.g. name=dance.mp4")
    suffix, kinds = Path(name).suffix.lower(), suffixes()
    kind = next((k for k, known in kinds.items() if suffix in known), None)
    if kind is None:
        raise ConfigError(f"{suffix or 'a file without an extension'} cannot be uploaded (got {name!r})",
                          where="name", hint=f"upload a video ({' '.join(kinds['video'])}), an image "
                          f"({' '.join(kinds['image'])}) or an OpenPose .json file")
    stem = unicodedata.normalize("NFKD", Path(name).stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:MAX_STEM].strip("-_") or "upload"
    if reserved_name(stem):
        stem += "-file"  # `con.png` opens a device on Windows
    return stem + suffix, kind


def over_limit(kind: str, size: int, limits: Limits, *, exact: bool) -> str:
    """The one line of a 413: the upload against the server's `kind` limit, and the flag that raises it."""
    limit = getattr(limits, kind)
    got = f"is {amount(size, 'B')}, more" if exact else "is more"  # a body without a Content-Length: read to the limit
    flag = limits.flag(kind, size) if exact else f"--limit {kind}=SIZE"
    return (f"{kind} upload {got} than the server's `{kind}` limit of {amount(limit, 'B')}; upload a smaller "
            f"file, or start the server with `animate serve {flag}`")


class Incoming(contextlib.AbstractContextManager):
    """One upload being received: chunks go to a temp file in the uploads folder (a name the start-of-run sweep
    knows, should the server die mid-upload), hashed as they come; `finish` renames it into its content-addressed
    place. Leaving the block without `finish` (too large, a dropped connection) deletes the temp file."""

    def __init__(self, config: ServeConfig, name: str, kind: str):
        self.folder, self.name, self.kind = config.uploads, name, kind
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_beside(self.folder / f"upload{Path(name).suffix}")
        self.file = open(self.tmp, "xb")
        self.sha, self.size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.sha.update(chunk)
        self.size += len(chunk)

    def finish(self) -> dict:
        """Publish the file (or keep the one already there: same bytes, same name) and describe it."""
        self.file.close()
        if not self.size:
            raise ConfigError("is empty (got 0 bytes)", where="body",
                              hint="send the file's bytes as the request body (curl --data-binary @FILE)")
        digest = self.sha.hexdigest()
        dest = self.folder / digest[:HASH_CHARS] / self.name
        if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == self.size:
            self.tmp.unlink()  # uploaded before: its content-addressed copy is complete (it was renamed in whole)
        else:
            publish(self.tmp, dest)
        return {"path": str(dest), "source": str(dest), "bytes": self.size, "sha256": digest, "kind": self.kind}

    def __exit__(self, *exc) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
