"""Latents to frames: the VAE decode, a chunk at a time, in the stack's decode dtype with an fp32 retry for a half
precision chunk that overflows, uint8 on the device, and the memory ladder when even one frame does not fit."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from animate.errors import OutOfMemory
from animate.rendering.device import dtype_name
from animate.rendering.fastpaths import fit_decode_chunk, frames_to_uint8
from animate.rendering.memory import free_memory, is_out_of_memory
from animate.rendering.numeric import frames_fault

if TYPE_CHECKING:
    from animate.spec import ClipSpec


def decode_latents(renderer, pipe, latents, spec: ClipSpec,
                   keep_float: bool = False) -> tuple[tuple | None, str | None]:
    """((uint8 frames, floats or None, info), None), or (None, what is wrong) when a decoded chunk is NaN/inf
    or flat even in fp32. A chunk at a time, in the stack's decode dtype (fp16 for SD1.5 on GPUs, as diffusers
    decodes): a chunk that comes out NaN/inf or flat in half precision is decoded again in fp32, and so are
    the chunks after it. Each chunk becomes uint8 on the device and only then moves to the CPU (a quarter of
    the float bytes), so the device holds one chunk and CPU memory no float copy of the clip. On
    out-of-memory chunks halve, and at one frame the memory ladder goes down a rung."""
    import torch  # torch stack: kept out of light commands

    vae = pipe.vae
    # The VAE's own device says cpu when offloaded; only then ask the pipeline (its _execution_device walks
    # every module: ~70 ms a clip on a small model).
    device = (getattr(pipe, "_execution_device", None) if renderer.ladder.offloaded else None) or vae.device
    stack = renderer.stacks.get(renderer._stack_key(spec))
    wanted = stack.decode_dtype if stack is not None and stack.decode_dtype is not None else vae.dtype
    dtype = wanted
    vae.to(dtype=dtype)  # a no-op unless a video or keyframe clip left it in fp32 for encoding
    # The same arithmetic as diffusers' AnimateDiffPipeline.decode_latents, chunk by chunk (scaled per chunk:
    # a scaled copy of a long clip's latents would outweigh its frames on a VAE that downsamples 2×).
    scale = 1 / vae.config.scaling_factor
    flat = latents[0].permute(1, 0, 2, 3)  # (frames, C, h, w): one video per call

    chunk = fit_decode_chunk(spec.decode_chunk, vae, str(device), spec.height, spec.width)
    floats, start, info = [], 0, {}
    done = None  # the clip's uint8 frames, filled chunk by chunk (no list of chunks to join: 2× the bytes)
    try:
        while start < len(flat):
            out_of_memory = False
            try:
                with torch.inference_mode():
                    z = (scale * flat[start:start + chunk].to(torch.float32)).to(device, dtype)
                    piece = vae.decode(z).sample
                    z = None
                    fault = frames_fault(piece, start)
                    if fault is None:
                        frames, part = frames_to_uint8(piece, keep_float)
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                out_of_memory = True
            piece = z = None
            if out_of_memory:
                free_memory(renderer.device)
                if chunk > 1:
                    chunk = max(1, chunk // 2)
                elif renderer.ladder.step(pipe) is None:
                    done = floats = flat = None  # the error's traceback would keep them alive
                    raise OutOfMemory(f"out of memory decoding {spec.stem} even one frame at a time, after "
                                      f"trying {renderer.ladder.tried()}", hint="lower the size")
                continue
            if fault is not None:
                if dtype == torch.float32:
                    return None, fault
                # Half precision overflowed: this chunk and the rest in fp32 (fp16 → fp32 → fp16 is exact).
                info["decode_retry"] = {"fault": fault, "dtype": dtype_name(dtype), "retried_in": "fp32"}
                dtype = torch.float32
                vae.to(dtype=dtype)
                continue
            if done is None:
                done = np.empty((len(flat), *frames.shape[1:]), np.uint8)
            done[start:start + len(frames)] = frames
            if keep_float:
                floats.append(part)
            start += len(frames)
    finally:
        if dtype != wanted:
            vae.to(dtype=wanted)
    info["decode_chunk"] = chunk
    info["decode_dtype"] = dtype_name(dtype)
    return (done, np.concatenate(floats) if keep_float else None, info), None


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[0,1] floats → uint8 the way diffusers' numpy_to_pil does (×255, round)."""
    return np.ascontiguousarray((np.clip(frames, 0, 1) * 255).round().astype(np.uint8))
