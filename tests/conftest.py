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
os.environ.setdefault("ANIMATE_CACHE", tempfile.mkdtemp(prefix="animate-test-cache-"))

import pytest  # noqa: E402


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
    from animate.tiny import ensure_kit

    return ensure_kit()


@pytest.fixture(scope="session")
def renderer(kit):
    """One CPU renderer shared by the session, as a long script run would share it."""
    from animate.renderer import Renderer

    return Renderer(device="cpu")


TINY = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=2, guidance=1.0, frames=8,
            width=32, height=32, seed=3, prompt="a red fox in snow", negative="blurry")


@pytest.fixture
def tiny_fields():
    return dict(TINY)
