"""Out-of-memory: denoising retries with memory savers, decoding halves its chunks; both are recorded."""
import numpy as np
import pytest
import torch

from animate.errors import OutOfMemory
from animate.renderer import Renderer
from animate.spec import spec_from_fields


def tiny_spec(**kw):
    return spec_from_fields(dict(preset="tiny", prompt="x", frames=4, width=32, height=32, steps=1, seed=4, **kw))[0]


def test_denoise_oom_retries_with_forward_chunking(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    expected = renderer.render(spec).frames
    pipe_cls = type(renderer.stack_for(spec).pipe)
    original, calls = pipe_cls.__call__, []

    def flaky(self, *a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, *a, **kw)

    monkeypatch.setattr(pipe_cls, "__call__", flaky)
    result = renderer.render(spec)
    assert result.info["memory_fallbacks"] == ["forward_chunking"]
    assert np.array_equal(result.frames, expected)  # same noise, same frames


def test_denoise_oom_everywhere_is_one_clear_error(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    pipe_cls = type(renderer.stack_for(spec).pipe)

    def always(self, *a, **kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pipe_cls, "__call__", always)
    with pytest.raises(OutOfMemory, match="after trying forward_chunking"):
        renderer.render(spec)


def test_decode_oom_halves_chunks(kit, renderer, monkeypatch):
    spec = tiny_spec(decode_chunk=4)
    expected = renderer.render(spec).frames
    vae_cls = type(renderer.stack_for(spec).pipe.vae)
    original = vae_cls.decode

    def picky(self, z, *a, **kw):
        if len(z) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(self, z, *a, **kw)

    monkeypatch.setattr(vae_cls, "decode", picky)
    result = renderer.render(spec)
    assert result.info["decode_chunk"] == 1 and np.array_equal(result.frames, expected)
