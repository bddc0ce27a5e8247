"""This host's name as temp files and claims record it, and whether a process id is alive here."""
from __future__ import annotations
import os
import socket


def this_host() -> str:
    """This machine and pid namespace: a pid means something only inside its namespace, and containers (host
    networking, Kubernetes hostNetwork) can share one hostname."""
    try:
        return f"{socket.gethostname()}/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc (macOS, Windows): one namespace per host
        return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs on this host (a zombie, killed but not yet reaped, counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
