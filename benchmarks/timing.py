"""Timing and memory helpers shared by the benchmarks: (wall, CPU) clocks, interleaved repeats, medians, peak
RSS (resettable on Linux) and a one-line machine description. Ratios are always taken between runs measured in
the same process and interleaved, never against a stored wall time: the cores are shared."""
from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time


def now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    """(wall, cpu) seconds since `t0`. CPU time (user+sys, all threads) is the primary measure: on shared cores
    wall time also counts other processes' turns; with one torch thread CPU time tracks the work done."""
    t1 = now()
    return t1[0] - t0[0], t1[1] - t0[1]


def clock(fn) -> tuple[float, float]:
    t = now()
    fn()
    return since(t)


def add(*xs) -> tuple[float, float]:
    return sum(x[0] for x in xs), sum(x[1] for x in xs)


def interleaved(reps: int, **runs):
    """Run each named callable once per repeat, rotating the order each repeat; name → list of results."""
    names = list(runs)
    out = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            gc.collect()
            out[n].append(runs[n]())
    return out


def med(xs) -> tuple[float, float]:
    """Medians of (wall, cpu) samples, per component."""
    xs = list(xs)
    return statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)


def median(xs) -> float:
    return statistics.median(list(xs))


def seconds_text(v: float) -> str:
    """A duration for a table cell: milliseconds below one second."""
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (resettable, see reset_peak_rss), else getrusage's maximum."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: getrusage below
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM); False where the
    kernel does not allow it, and peak_rss_mb then stays the process's all-time high."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def machine_note() -> str:
    import torch

    try:
        load = "load avg %.2f/%.2f/%.2f" % os.getloadavg()
    except OSError:
        load = ""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores visible, {gpu}, torch "
            f"{torch.__version__}, {torch.get_num_threads()} thread(s), python {platform.python_version()}; {load}")
