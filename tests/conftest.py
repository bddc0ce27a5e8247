"""Test session setup: offline hub, one CPU thread, the tiny model kit built once per session."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_configure(config):
    try:
        import torch
    except ImportError:  # encoders-only environments
        return
    # Two threads on two shared cores spin and run ~30x slower.
    torch.set_num_threads(1)
