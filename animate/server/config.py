"""What a server is allowed to do, decided once at start."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from animate.run.limits import Limits
from animate.outputs.layout import UPLOADS_DIR  # noqa: F401  (the server's names are the layout's)

MAX_BODY_BYTES = 2_000_000  # a request body: a script is a few KB; the script limit's default
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass
class ServeConfig:
    out: Path
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None
    input_roots: list[Path] = field(default_factory=list)
    max_body: int = MAX_BODY_BYTES
    limits: Limits = field(default_factory=Limits)
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self):
        self.out = Path(self.out).resolve()
        self.input_roots = [Path(p).expanduser().resolve() for p in self.input_roots]

    @property
    def base_dir(self) -> Path:
        """Where relative paths in submitted scripts resolve: the first input root (or the output root, whose
        files are no input: a relative path there is refused like any other outside the input roots)."""
        return self.input_roots[0] if self.input_roots else self.out

    @property
    def uploads(self) -> Path:
        """Where `POST /api/uploads` stores files (content-addressed); submitted scripts may name its files as
        pose, init_video and keyframe sources, as if it were an input root."""
        return self.out / UPLOADS_DIR


def is_local(host: str) -> bool:
    """True for a loopback bind (only this machine can connect)."""
    name = host.strip("[]").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
