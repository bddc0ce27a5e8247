"""Numeric faults: NaN/inf latents and flat (black) decoded frames are retried once with the denoiser in fp32,
and the sidecar says so; a fault that comes back fails that clip in one line naming clip, seed and what was
tried, and the other clips finish. Faults are injected by patching the pipeline call and the VAE decode."""
import json

import pytest
import torch

from animate.errors import NumericFaultError, OutOfMemory
from animate.rendering.numeric import frames_fault, latents_fault
from animate.rendering.renderer import Renderer
from animate.run import run_specs
from animate.spec import spec_from_fields


def tiny_spec(name="clip", **kw):
    fields = dict(preset="tiny", prompt="x", frames=4, width=32, height=32, steps=1, seed=4)
    return spec_from_fields({**fields, **kw}, name=name)[0]


def nan_latents(monkeypatch, pipe_cls, times, when=lambda kw: True):
    """The pipeline call returns NaN latents the first `times` calls where `when(kwargs)`; records the UNet dtype
    of every call."""
    original, dtypes, poisoned_calls = pipe_cls.__call__, [], []

    def poisoned(self, *a, **kw):
        out = original(self, *a, **kw)
        dtypes.append(self.unet.dtype)
        if when(kw) and len(poisoned_calls) < times:
            poisoned_calls.append(1)
            out.frames = out.frames * float("nan")
        return out

    monkeypatch.setattr(pipe_cls, "__call__", poisoned)
    return dtypes


def test_nan_latents_are_retried_in_fp32_and_the_sidecar_says_so(kit, tmp_path, monkeypatch):
    renderer = Renderer(device="cpu", dtype="fp16")
    spec = tiny_spec()
    dtypes = nan_latents(monkeypatch, type(renderer.stack_for(spec).pipe), 1)
    summary = run_specs([spec], out=tmp_path, script_stem="nan", renderer=renderer)
    assert summary.exit_code == 0 and summary.done == ["clip"]
    assert dtypes == [torch.float16, torch.float32]
    info = json.loads((tmp_path / "nan" / "clip.json").read_text())["info"]
    assert info["numeric_retry"] == {"fault": "the denoiser produced NaN/inf latents", "dtype": "fp16",
                                     "retried_in": "fp32"}
    assert info["dtype"] == "fp16"
    assert renderer.stack_for(spec).pipe.unet.dtype == torch.float16  # the next clip runs as its render key says


def test_nan_again_fails_that_clip_in_one_line_and_the_others_finish(kit, tmp_path, monkeypatch):
    renderer = Renderer(device="cpu", dtype="fp16")
    specs = [tiny_spec("bad", prompt="poison"), tiny_spec("good", prompt="fine")]
    nan_latents(monkeypatch, type(renderer.stack_for(specs[0]).pipe), 99, when=lambda kw: kw["prompt"] == "poison")
    summary = run_specs(specs, out=tmp_path, script_stem="nan", renderer=renderer)
    assert summary.exit_code == 1 and summary.done == ["good"]
    [(stem, line)] = summary.failed
    assert stem == "bad" and "\n" not in line
    assert line.startswith("clip bad seed 4: the denoiser produced NaN/inf latents after retrying the denoiser in "
                           "fp32 (first try in fp16")
    assert not (tmp_path / "nan" / "bad.json").exists() and (tmp_path / "nan" / "good.json").exists()
    assert "numeric_retry" not in json.loads((tmp_path / "nan" / "good.json").read_text())["info"]


def test_fp32_on_cpu_cannot_retry_and_says_so(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = tiny_spec()
    dtypes = nan_latents(monkeypatch, type(renderer.stack_for(spec).pipe), 1)
    with pytest.raises(NumericFaultError) as caught:
        renderer.render(spec)
    assert str(caught.value).startswith("clip clip seed 4: the denoiser produced NaN/inf latents in fp32; no "
                                        "precision retry: the denoiser already runs in fp32")
    assert caught.value.exit_code == 1 and dtypes == [torch.float32]


def black_chunks(monkeypatch, vae_cls, black):
    """The VAE's decode returns a black chunk on the calls (0-based) in `black`; records (frames, dtype) per call."""
    original, calls = vae_cls.decode, []

    def blackout(self, z, *a, **kw):
        out = original(self, z, *a, **kw)
        calls.append((len(z), z.dtype))
        if len(calls) - 1 in black:
            out.sample = torch.full_like(out.sample, -1.0)
        return out

    monkeypatch.setattr(vae_cls, "decode", blackout)
    return calls


def test_a_black_half_precision_chunk_is_decoded_again_in_fp32(kit, monkeypatch):
    """The VAE decodes in the run's dtype (as diffusers does); a chunk that comes out black there is decoded
    again in fp32, and so is the rest of the clip; the denoiser is not run again."""
    renderer = Renderer(device="cpu", dtype="bf16")
    spec = tiny_spec(decode_chunk=2)
    vae = renderer.stack_for(spec).pipe.vae
    assert vae.dtype == torch.bfloat16
    calls = black_chunks(monkeypatch, type(vae), black={1})
    result = renderer.render(spec)
    assert calls == [(2, torch.bfloat16), (2, torch.bfloat16), (2, torch.float32)]
    assert result.info["decode_retry"] == {"fault": "the VAE produced frame 2 black", "dtype": "bf16",
                                           "retried_in": "fp32"}
    assert result.info["decode_dtype"] == "fp32" and "numeric_retry" not in result.info
    assert result.frames.shape == (4, 32, 32, 3) and vae.dtype == torch.bfloat16  # the next clip decodes in bf16


def test_a_chunk_black_in_fp32_too_retries_the_denoiser(kit, monkeypatch):
    renderer = Renderer(device="cpu", dtype="bf16")
    spec = tiny_spec(decode_chunk=2)
    calls = black_chunks(monkeypatch, type(renderer.stack_for(spec).pipe.vae), black={1, 2})
    result = renderer.render(spec)
    assert result.info["numeric_retry"] == {"fault": "the VAE produced frame 2 black", "dtype": "bf16",
                                            "retried_in": "fp32"}
    assert [n for n, _ in calls] == [2, 2, 2, 2, 2]


def fp32_casts_fail(monkeypatch, unet_cls, times):
    """Casting the UNet to fp32 runs out of memory part way (its first layer cast) the first `times` times."""
    original, failures = unet_cls.to, []

    def to(self, *a, **kw):
        if kw.get("dtype") == torch.float32 and len(failures) < times:
            failures.append(1)
            self.conv_in.to(dtype=torch.float32)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.64 GiB (simulated)")
        return original(self, *a, **kw)

    monkeypatch.setattr(unet_cls, "to", to)
    return failures


def test_the_fp32_retry_goes_down_the_memory_ladder(kit, monkeypatch):
    renderer = Renderer(device="cpu", dtype="fp16")
    spec = tiny_spec()
    pipe = renderer.stack_for(spec).pipe
    dtypes = nan_latents(monkeypatch, type(pipe), 1)
    failures = fp32_casts_fail(monkeypatch, type(pipe.unet), 1)
    result = renderer.render(spec)
    assert failures == [1] and dtypes == [torch.float16, torch.float32]
    assert result.info["numeric_retry"]["retried_in"] == "fp32"
    assert result.info["memory_fallbacks"] == ["free_caches"]
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float16}


def test_the_fp32_retry_out_of_memory_at_every_rung_is_one_line(kit, monkeypatch):
    renderer = Renderer(device="cpu", dtype="fp16")
    spec = tiny_spec()
    pipe = renderer.stack_for(spec).pipe
    nan_latents(monkeypatch, type(pipe), 1)
    fp32_casts_fail(monkeypatch, type(pipe.unet), 99)
    with pytest.raises(OutOfMemory) as caught:
        renderer.render(spec)
    line = str(caught.value)
    assert line.startswith("out of memory casting the denoiser to fp32 to retry clip after a numeric fault, after "
                           "trying free_caches, forward_chunking, free_noise_split, vae_slicing_tiling")
    assert "\n" not in line and caught.value.exit_code == 1
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float16}  # the half-done cast was undone


def test_fault_checks():
    good = torch.randn(1, 4, 3, 4, 4)
    assert latents_fault(good) is None
    inf = good.clone()
    inf[0, 0, 1, 0, 0] = float("inf")
    assert latents_fault(inf) == "the denoiser produced NaN/inf latents"
    flat = good.clone()
    flat[:, :, 2] = 0.5
    assert latents_fault(flat) == "the denoiser produced constant latents (frame 2)"
    frames = torch.rand(3, 3, 8, 8) * 2 - 1
    assert frames_fault(frames) is None
    grey = frames.clone()
    grey[1] = 0.2
    assert frames_fault(grey, 4) == "the VAE produced frame 5 a single flat colour"
    dark = frames.clone()
    dark[2] = -1.0 + torch.rand(3, 8, 8) * 0.005  # within one 8-bit level of black
    assert frames_fault(dark) == "the VAE produced frame 2 black"
    nan = frames.clone()
    nan[0, 0, 0, 0] = float("nan")
    assert frames_fault(nan, 8) == "the VAE produced NaN/inf values (frames from 8)"
    dim = frames * 0.05 - 0.9  # dark but with detail: not a fault
    assert frames_fault(dim) is None


def test_a_pose_clip_retries_with_its_controlnet_in_fp32_too(kit, tmp_path, monkeypatch):
    from diffusers import AnimateDiffControlNetPipeline
    from PIL import Image

    renderer = Renderer(device="cpu", dtype="fp16")
    spec = tiny_spec(pose={"source": str(tmp_path), "controlnet": "tiny"})
    cond = [Image.new("RGB", (32, 32), (255, 0, 85)) for _ in range(spec.frames)]
    original, seen = AnimateDiffControlNetPipeline.__call__, []

    def poisoned(self, *a, **kw):
        out = original(self, *a, **kw)
        seen.append((self.unet.dtype, self.controlnet.dtype))
        if len(seen) == 1:
            out.frames = out.frames * float("nan")
        return out

    monkeypatch.setattr(AnimateDiffControlNetPipeline, "__call__", poisoned)
    result = renderer.render(spec, pose_frames=cond)
    assert seen == [(torch.float16, torch.float16), (torch.float32, torch.float32)]
    assert result.info["numeric_retry"]["retried_in"] == "fp32"
    assert renderer.stack_for(spec).controlnets and all(
        cn.dtype == torch.float16 for cn in renderer.stack_for(spec).controlnets.values())


def test_a_pose_clip_keeps_the_run_dtype_and_the_vae_dtype(kit, tmp_path):
    """diffusers' from_pipe casts shared components to fp32 unless told: a pose clip must not turn the stack's
    fp16 UNet into fp32 for itself and every later clip."""
    from PIL import Image

    renderer = Renderer(device="cpu", dtype="fp16")
    spec = tiny_spec(pose={"source": str(tmp_path), "controlnet": "tiny"})
    pipe, _, stack = renderer.pipeline_call(spec, [Image.new("RGB", (32, 32))] * spec.frames)
    assert (pipe.unet.dtype, pipe.text_encoder.dtype, pipe.controlnet.dtype) == (torch.float16,) * 3
    assert pipe.vae.dtype == torch.float16 and stack.pipe.unet.dtype == torch.float16  # SD1.5 decodes in fp16
