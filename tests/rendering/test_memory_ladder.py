"""Out-of-memory: denoising goes down the ladder a rung per error (each rung kept for the run and recorded),
decoding halves its chunks; every rung failing is one line and exit 1; a failed clip leaves no tensors behind.

The errors are injected (torch.cuda.OutOfMemoryError raised by a patched pipeline call) on the CPU. The offload
rungs need CUDA: on the CPU they are skipped with the reason recorded; one test simulates a CUDA device by
patching the ladder's device check and the pipeline's two offload methods (which then only record the call)."""
import gc
import json

import numpy as np
import pytest
import torch

from animate.errors import OutOfMemory
from animate.rendering.memory import RUNGS, split_active
from animate.rendering.renderer import Renderer
from animate.run.runner import run_specs
from animate.spec import spec_from_fields

CPU_RUNGS = [r for r in RUNGS if "offload" not in r]


def tiny_spec(name="clip", **kw):
    fields = dict(preset="tiny", prompt="x", frames=4, width=32, height=32, steps=1, seed=4)
    return spec_from_fields({**fields, **kw}, name=name)[0]


def oom_first(monkeypatch, pipe_cls, n, when=lambda kw: True):
    """Make the pipeline call raise CUDA out-of-memory the first `n` times `when(kwargs)` holds."""
    original, calls = pipe_cls.__call__, []

    def flaky(self, *a, **kw):
        if when(kw) and len(calls) < n:
            calls.append(1)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, *a, **kw)

    monkeypatch.setattr(pipe_cls, "__call__", flaky)
    return calls


@pytest.mark.parametrize("failures", range(1, len(CPU_RUNGS) + 1))
def test_each_rung_in_turn_and_the_clip_finishes(kit, monkeypatch, failures):
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    expected = renderer.render(spec).frames
    oom_first(monkeypatch, type(renderer.stack_for(spec).pipe), failures)
    result = renderer.render(spec)
    assert result.info["memory_fallbacks"] == CPU_RUNGS[:failures]
    # Every CPU rung computes the same values in smaller pieces: same noise, same frames (to a level).
    assert np.abs(result.frames.astype(int) - expected).max() <= 1
    again = renderer.render(spec)  # the rungs stay taken for the rest of the run
    assert again.info["memory_fallbacks"] == CPU_RUNGS[:failures]
    if failures >= 3:
        assert split_active(renderer.stack_for(spec).pipe.unet)


def test_offload_rungs_are_skipped_on_cpu_with_the_reason(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    oom_first(monkeypatch, type(renderer.stack_for(spec).pipe), 99)
    with pytest.raises(OutOfMemory) as caught:
        renderer.render(spec)
    line = str(caught.value)
    assert "after trying " + ", ".join(CPU_RUNGS) in line
    assert "model_cpu_offload (skipped: needs a CUDA device (running on cpu))" in line
    assert "sequential_cpu_offload (skipped" in line and "\n" not in line
    assert renderer.ladder.skipped == {"model_cpu_offload": "needs a CUDA device (running on cpu)",
                                       "sequential_cpu_offload": "needs a CUDA device (running on cpu)"}


def test_offload_rungs_in_order_simulated_cuda(kit, monkeypatch):
    """Simulated: the ladder believes it runs on CUDA and the offload methods only record that they were
    called; the real offload (accelerate hooks to a CUDA device) cannot run on this machine."""
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    pipe_cls = type(renderer.stack_for(spec).pipe)
    offloads = []
    monkeypatch.setattr(renderer.ladder, "offload_unavailable", lambda: None)
    monkeypatch.setattr(pipe_cls, "enable_model_cpu_offload", lambda self, device=None: offloads.append("model"))
    monkeypatch.setattr(pipe_cls, "enable_sequential_cpu_offload",
                        lambda self, device=None: offloads.append("sequential"))
    oom_first(monkeypatch, pipe_cls, len(RUNGS))
    result = renderer.render(spec)
    assert result.info["memory_fallbacks"] == list(RUNGS) and "memory_skipped" not in result.info
    assert offloads == ["model", "sequential"]


def test_oom_at_every_rung_fails_that_clip_in_one_line_and_the_run_goes_on(kit, tmp_path, monkeypatch):
    renderer = Renderer(device="cpu")
    specs = [tiny_spec("big", prompt="too big"), tiny_spec("small", prompt="fits")]
    oom_first(monkeypatch, type(renderer.stack_for(specs[0]).pipe), 99, when=lambda kw: kw["prompt"] == "too big")
    summary = run_specs(specs, out=tmp_path, script_stem="ladder", renderer=renderer)
    assert summary.exit_code == 1 and summary.done == ["small"]
    [(stem, line)] = summary.failed
    assert stem == "big" and "\n" not in line
    assert line.startswith("out of memory while denoising big") and "after trying free_caches, forward_chunking" \
        in line and "model_cpu_offload (skipped" in line
    sidecar = json.loads((tmp_path / "ladder" / "small.json").read_text())
    assert sidecar["info"]["memory_fallbacks"] == CPU_RUNGS  # what the failed clip took stays on for the run
    assert set(sidecar["info"]["memory_skipped"]) == {"model_cpu_offload", "sequential_cpu_offload"}


def live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


def oom_mid_denoise(monkeypatch, pipe_cls):
    """Out-of-memory from inside every denoising loop, after its first step: the failed call's frames hold
    latents, prompt embeddings and the UNet's activations."""
    original = pipe_cls.__call__

    def fails_after_a_step(self, *a, callback_on_step_end=None, **kw):
        def then_fail(pipe, i, t, step_kw):
            callback_on_step_end(pipe, i, t, step_kw)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

        return original(self, *a, callback_on_step_end=then_fail, **kw)

    monkeypatch.setattr(pipe_cls, "__call__", fails_after_a_step)


def test_memory_is_released_after_a_failed_clip(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec(steps=2)
    pipe_cls = type(renderer.stack_for(spec).pipe)
    # Take every rung first, so the failed clip and the clean one run with the same settings.
    oom_first(monkeypatch, pipe_cls, len(CPU_RUNGS))
    renderer.render(spec)
    monkeypatch.undo()
    clean = renderer.render(spec)
    del clean
    after_clean = live_tensors()
    oom_mid_denoise(monkeypatch, pipe_cls)
    try:
        renderer.render(spec)
    except OutOfMemory:
        pass  # the failure is the point: what counts is the memory left behind
    after_failed = live_tensors()
    assert after_failed == after_clean
    monkeypatch.undo()
    assert renderer.render(spec).info["memory_fallbacks"] == CPU_RUNGS  # and the next clip runs as before


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
    assert result.info["decode_chunk"] == 1
    # One frame per VAE call instead of four: the same math, batched differently (float rounding at most).
    assert np.abs(result.frames.astype(int) - expected.astype(int)).max() <= 1


def test_decode_oom_at_one_frame_goes_down_the_ladder(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec(decode_chunk=1)
    vae_cls = type(renderer.stack_for(spec).pipe.vae)
    original, failures = vae_cls.decode, []

    def tight(self, z, *a, **kw):
        if len(failures) < 2:
            failures.append(1)
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(self, z, *a, **kw)

    monkeypatch.setattr(vae_cls, "decode", tight)
    result = renderer.render(spec)
    assert result.info["memory_fallbacks"] == ["free_caches", "forward_chunking"]


def test_a_new_lora_loads_after_the_split_rung(kit, monkeypatch):
    """FreeNoise split wraps UNet blocks; a LoRA loaded later must still find its layers (and re-enabling
    FreeNoise its blocks), so the wrappers come off while a clip is prepared and go back on after."""
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    oom_first(monkeypatch, type(renderer.stack_for(spec).pipe), 3)
    renderer.render(spec)
    monkeypatch.undo()
    zoom = tiny_spec(adapters=[{"name": "zoom", "source": "tiny-zoom-in", "kind": "motion", "weight": 0.8}])
    result = renderer.render(zoom)
    assert result.info["memory_fallbacks"] == CPU_RUNGS[:3]
    assert split_active(renderer.stack_for(zoom).pipe.unet)
    assert any("motion-lora-zoom-in" in key for key in renderer.load_counts)
    plain = Renderer(device="cpu").render(zoom).frames
    assert np.abs(result.frames.astype(int) - plain).max() <= 1  # the LoRA acts the same through the split


def test_what_counts_as_out_of_memory():
    from animate.rendering.memory import is_out_of_memory

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only the runtime's own errors


def test_library_allocation_failures_count_as_out_of_memory():
    """cuBLAS, cuDNN and cuFFT allocate outside PyTorch's allocator; torch raises their status as a RuntimeError
    (these are the texts it raises, from torch's CUDA sources)."""
    from animate.rendering.memory import is_out_of_memory

    for text in ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
                 "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
                 "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
                 "cuFFT error: CUFFT_ALLOC_FAILED",
                 "CUDA ran out of memory outside PyTorch's allocator. If this workload uses many dynamic shapes, "
                 "cuDNN may need additional device memory to JIT-compile shape-specialized kernels."):
        assert is_out_of_memory(RuntimeError(text)), text
    assert not is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasGemmEx"))
    assert not is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))


def test_forward_chunking_slices_rows_not_tokens(kit):
    """The forward_chunking rung: each feed-forward runs on slices of its rows, at most FF_SLICE_BYTES of its widest
    activation each, with the same values as unsliced; diffusers' chunk_size=1 runs it once per token."""
    from diffusers.models.attention import FeedForward

    from animate.rendering.memory import chunk_feed_forward

    torch.manual_seed(0)
    ff = FeedForward(16, activation_fn="geglu")
    x = torch.randn(3, 50, 16)
    calls = []
    ff.net[0].register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    with torch.inference_mode():
        plain = ff(x)
        assert chunk_feed_forward(ff, slice_bytes=128 * 40 * 4) == 1  # 40 rows of the 128-wide GEGLU projection
        calls.clear()
        sliced = ff(x)
    assert calls == [40, 40, 40, 30] and sliced.shape == plain.shape
    assert torch.allclose(sliced, plain, atol=1e-6, rtol=0)

    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    unet = renderer.stack_for(spec).pipe.unet
    counts = {}
    blocks = [m for m in unet.modules() if isinstance(m, FeedForward)]

    def count(module, args, out):
        counts[module] = counts.get(module, 0) + 1

    hooks = [b.net[0].register_forward_hook(count) for b in blocks]
    pipe, kwargs, _ = renderer.pipeline_call(spec)
    try:
        unet.enable_forward_chunking(chunk_size=1, dim=1)  # diffusers' rung until now: a launch per token
        with torch.inference_mode():
            pipe(**kwargs)
        per_token = sum(counts.values())
        unet.disable_forward_chunking()
        counts.clear()
        renderer.ladder.taken.append("forward_chunking")
        renderer.ladder._apply(pipe, "forward_chunking")
        with torch.inference_mode():
            pipe(**kwargs)
    finally:
        for h in hooks:
            h.remove()
    # 16 tokens (spatial) or 4 frames (motion) a block at 32×32, 4 frames; the tiny rows fit one slice
    assert sum(counts.values()) == len(blocks) and per_token >= 4 * len(blocks)


def test_an_offload_rung_takes_fused_loras_out_first_simulated_cuda(kit, monkeypatch):
    """Simulated CUDA, as above. A fused LoRA under sequential offload can never be taken out (the weights live in
    accelerate's hooks), so the next weight change would apply it twice: the ladder unfuses before offloading,
    and LoRAs stay unfused while the model is offloaded."""
    renderer = Renderer(device="cpu")
    lora = [{"name": "lcm", "source": "tiny-lcm", "weight": 0.8}]
    spec = tiny_spec(adapters=lora)
    stack = renderer.stack_for(spec)
    pipe_cls = type(stack.pipe)
    weights = {n: p.detach().clone() for n, p in stack.pipe.unet.named_parameters() if "lora" not in n}
    seen = []
    monkeypatch.setattr(renderer.ladder, "offload_unavailable", lambda: None)
    monkeypatch.setattr(pipe_cls, "enable_model_cpu_offload",
                        lambda self, device=None: seen.append(("model", stack.mixer.fused)))
    monkeypatch.setattr(pipe_cls, "enable_sequential_cpu_offload", lambda self, device=None: seen.append("x"))
    renderer.render(spec)
    assert stack.mixer.fused is not None  # fused as usual before any offload
    oom_first(monkeypatch, pipe_cls, len(CPU_RUNGS) + 1)
    result = renderer.render(tiny_spec(adapters=[{**lora[0], "weight": 0.5}]))
    assert seen == [("model", None)] and result.info["memory_fallbacks"] == CPU_RUNGS + ["model_cpu_offload"]
    assert stack.mixer.fused is None  # the retry ran the LoRA unfused
    renderer.render(tiny_spec(adapters=[{**lora[0], "weight": 0.3}]))
    assert stack.mixer.fused is None  # later clips too, while offloaded
    assert all(torch.equal(p, weights[n]) for n, p in stack.pipe.unet.named_parameters() if n in weights)
    fresh = Renderer(device="cpu").render(tiny_spec(adapters=[{**lora[0], "weight": 0.5, }], fuse=False)).frames
    assert np.abs(result.frames.astype(int) - fresh.astype(int)).max() <= 1
