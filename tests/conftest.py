"""Test session setup: offline hub, one CPU thread, a private cache where the tiny kit is built once."""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The pose detector's env is an install (CI makes it with `python -m motion.pose.extract_env install`), not a
# cache entry: keep using it when the cache below moves to a private folder.
os.environ.setdefault("ANIMATE_POSE_ENV", os.path.join(
    os.environ.get("ANIMATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "animate"), "pose-env"))
# Each process (every xdist worker too: they inherit the controller's environment) gets its own cache, so
# cache tests see only their own entries; a cache the user set is kept.
if "ANIMATE_CACHE" not in os.environ or os.environ.get("ANIMATE_TEST_CACHE") == os.environ["ANIMATE_CACHE"]:
    os.environ["ANIMATE_CACHE"] = os.environ["ANIMATE_TEST_CACHE"] = tempfile.mkdtemp(prefix="animate-test-cache-")

import pytest  # noqa: E402


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 4 (each holds torch and the tiny kit, ~0.6 GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def pytest_configure(config):
    try:
        import torch
    except ImportError:  # encoder-only environments
        return
    # Two threads on two shared cores spin and run ~30x slower.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def kit():
    """The tiny offline model kit (built on first use)."""
    from animate.models.tiny import ensure_kit

    return ensure_kit()


@pytest.fixture(scope="session")
def renderer(kit):
    """One CPU renderer shared by the session, as a long script run would share it."""
    from animate.rendering.renderer import Renderer

    return Renderer(device="cpu")


TINY = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=2, guidance=1.0, frames=8,
            width=32, height=32, seed=3, prompt="a red fox in snow", negative="blurry")


@pytest.fixture
def tiny_fields():
    return dict(TINY)


# Under xdist the drills run in the workers and the controller never loads tests/drills/conftest.py: it adds
# up each worker's tally here and prints the one line (and fails the run if an output was lost).
DRILLS_SEEN = []
MATRIX_SEEN = []  # the combination matrix's tally from each worker (tests/matrix_helpers.py)


def pytest_testnodedown(node, error):
    tally = getattr(node, "workeroutput", {}).get("drill_tally")
    if tally and tally["drills"]:
        DRILLS_SEEN.append(tally)
    matrix = getattr(node, "workeroutput", {}).get("matrix_tally")
    if matrix and matrix["run"]:
        MATRIX_SEEN.append(matrix)


def _matrix_tally():
    """The matrix's tally: the workers' added up, or this process's (no xdist); None when it did not run."""
    import sys

    helpers = sys.modules.get("matrix_helpers")
    if not MATRIX_SEEN and (helpers is None or not helpers.TALLY.run):
        return None
    from matrix_helpers import Tally

    total = Tally()
    for seen in MATRIX_SEEN or [vars(helpers.TALLY)]:
        total.add(seen)
    return total


def _drills_tally():
    from drills.drill_kit import Tally

    total = Tally()
    for seen in DRILLS_SEEN:
        total.drills += seen["drills"]
        total.faults += seen["faults"]
        total.lost += seen["lost"]
        total.lost_detail.extend(seen["lost_detail"])
    return total


def pytest_terminal_summary(terminalreporter):
    matrix = _matrix_tally()
    if matrix is not None:
        terminalreporter.write_line(matrix.line())
    if DRILLS_SEEN:
        total = _drills_tally()
        terminalreporter.write_line(total.line())
        for item in total.lost_detail:
            terminalreporter.write_line(f"  lost: {item}")


def pytest_sessionfinish(session, exitstatus):
    import sys

    workeroutput = getattr(session.config, "workeroutput", None)
    helpers = sys.modules.get("matrix_helpers")
    if workeroutput is not None and helpers is not None:  # an xdist worker that ran the matrix
        workeroutput["matrix_tally"] = vars(helpers.TALLY)
    if DRILLS_SEEN and _drills_tally().lost:
        session.exitstatus = 1
