"""How many CPUs this process may really use (affinity mask, cgroup quota)."""
from __future__ import annotations
import math
import os
from pathlib import Path


# ------------------------------------------------------------------------------------------- CPU threads
def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        limit = None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):  # no cgroup v2 CPU quota here: the affinity mask is the limit
        limit = None
    if limit is not None:
        n = min(n, max(1, limit))
    return max(1, n)
