"""The out-of-memory ladder: after a CUDA/MPS out-of-memory error the renderer takes the next rung (a memory
saver) and tries again. Each rung taken is kept for the rest of the run and recorded in every later sidecar;
a rung that cannot work on this device is skipped with the reason recorded."""
from __future__ import annotations

from contextlib import contextmanager
import ctypes
import ctypes.util
import sys
import gc

# Cheapest first: the first four change nothing about the pictures (feed-forward chunking, FreeNoise split and VAE
# slicing compute the same values in pieces); the offloads trade speed for memory.
RUNGS = ("free_caches", "forward_chunking", "free_noise_split", "vae_slicing_tiling", "model_cpu_offload",
         "sequential_cpu_offload")
OFFLOADS = ("model_cpu_offload", "sequential_cpu_offload")
SPLIT_SIZES = dict(spatial_split_size=256, temporal_split_size=8)


# What CUDA libraries say when they cannot get device memory: their own allocations fail outside PyTorch's
# allocator, so torch raises a plain RuntimeError (torch.AcceleratorError) with the library's status, e.g.
# "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`" or "cuFFT error: CUFFT_ALLOC_FAILED".
# cuBLAS also reports a handle it could not create for want of memory as NOT_INITIALIZED.
LIBRARY_OOM = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "CUFFT_ALLOC_FAILED",
               "CUSOLVER_STATUS_ALLOC_FAILED", "CUSPARSE_STATUS_ALLOC_FAILED",
               "CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's allocator raises its own type; MPS and CUDA's libraries (cuBLAS, cuDNN, cuFFT) a RuntimeError
    that says so."""
    import torch  # torch stack: kept out of light commands

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return "out of memory" in text.lower() or any(marker in text for marker in LIBRARY_OOM)


def release_heap() -> None:
    """Hand freed CPU memory back to the system (glibc's malloc_trim; a no-op elsewhere). glibc keeps freed
    blocks of the size it last saw freed in its heap, so after denoising a long clip the latent-sized buffers
    of the scheduler's steps stay resident under the decode and the encoders: at 1024 frames on the tiny kit,
    that was most of the peak's growth beyond the frames themselves."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = _find_malloc_trim()
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False


def free_memory(device: str) -> None:
    """Collect garbage and hand cached device memory back (call outside an `except` block: a live exception
    holds the failed call's frames and their tensors)."""

    import torch  # torch stack: kept out of light commands

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class MemoryLadder:
    """The rungs taken so far on one renderer (its whole run), and those this device cannot use."""

    def __init__(self, device: str, before_offload=None):
        self.device = device
        self.taken: list[str] = []
        self.skipped: dict[str, str] = {}  # rung → why it cannot work here
        # Called before an offload rung is applied: fused LoRA weights must come out first (an offloaded model's
        # weights live in accelerate's hooks, where unfusing cannot reach them).
        self.before_offload = before_offload

    @property
    def offloaded(self) -> bool:
        return any(rung in OFFLOADS for rung in self.taken)

    def offload_unavailable(self) -> str | None:
        """Why CPU offload cannot help on this device, or None where it can."""
        if self.device.startswith("cuda"):
            return None
        if self.device.startswith("mps"):
            return "MPS memory is shared with the CPU, so offloading to it frees nothing"
        return f"needs a CUDA device (running on {self.device})"

    def step(self, pipe) -> str | None:
        """Apply the next rung to `pipe` (and the models it shares); None when every rung is taken or skipped."""
        for rung in RUNGS:
            if rung in self.taken or rung in self.skipped:
                continue
            if rung == "free_noise_split" and not hasattr(pipe, "enable_free_noise_split_inference"):
                self.skipped[rung] = "this pipeline (SDXL) has no FreeNoise"
                continue
            if rung in OFFLOADS:
                why = self.offload_unavailable()
                if why:
                    self.skipped[rung] = why
                    continue
            if rung in OFFLOADS and self.before_offload is not None:
                self.before_offload()
            self.taken.append(rung)
            self._apply(pipe, rung)
            return rung
        return None

    def before_clip(self, pipe) -> None:
        """Keep the rungs taken for this clip's pipeline too (a pose clip builds a new one around the stack)."""
        if "free_caches" in self.taken:
            free_memory(self.device)
        for rung in self.taken:
            if rung in OFFLOADS or rung == "free_noise_split":
                self._apply(pipe, rung)

    def record(self) -> dict:
        """What the sidecar's `info` says about memory (nothing when no OOM happened)."""
        out: dict = {}
        if self.taken:
            out["memory_fallbacks"] = list(self.taken)
        if self.skipped:
            out["memory_skipped"] = dict(self.skipped)
        return out

    def tried(self) -> str:
        """The one-line list of what was tried, for the error when every rung failed."""
        parts = list(self.taken) + [f"{rung} (skipped: {why})" for rung, why in self.skipped.items()]
        return ", ".join(parts) or "nothing"

    def _apply(self, pipe, rung: str) -> None:
        if rung == "free_caches":
            free_memory(self.device)
        elif rung == "forward_chunking":
            chunk_feed_forward(pipe.unet)
        elif rung == "free_noise_split":
            # SparseCtrl's pipeline has no FreeNoise methods; its UNet is the stack's, split through that.
            if not split_active(pipe.unet) and hasattr(pipe, "enable_free_noise_split_inference"):
                pipe.enable_free_noise_split_inference(**SPLIT_SIZES)
        elif rung == "vae_slicing_tiling":
            pipe.vae.enable_slicing()
            pipe.vae.enable_tiling()
        elif rung == "model_cpu_offload":
            if getattr(pipe, "_animate_offload", None) != rung:
                pipe.enable_model_cpu_offload(device=self.device)
                pipe._animate_offload = rung
        elif rung == "sequential_cpu_offload":
            if getattr(pipe, "_animate_offload", None) != rung:
                pipe.enable_sequential_cpu_offload(device=self.device)  # removes the model offload hooks first
                pipe._animate_offload = rung


# ---------------------------------------------------------------- feed-forward chunking
# diffusers' enable_forward_chunking(chunk_size=1, dim=1) runs every feed-forward once per token (or per frame in
# the motion modules): ~10^5 small kernel launches a UNet call. The feed-forward acts on each token alone, so it
# can run on any slice of the tokens: here each FeedForward runs on slices of its rows (batch × tokens) sized so
# that its widest activation (the GEGLU projection: 8× the channels) stays under FF_SLICE_BYTES.
FF_SLICE_BYTES = 128 * 2 ** 20


def chunk_feed_forward(model, slice_bytes: int = FF_SLICE_BYTES) -> int:
    """Run every FeedForward of `model` in row slices of at most `slice_bytes` of its widest activation, from now
    on (the module keeps its names and parameters: LoRA loading and fusing are unaffected); how many got it."""
    import types

    from diffusers.models.attention import FeedForward  # torch stack: kept out of light commands

    count = 0
    for module in model.modules():
        if isinstance(module, FeedForward):
            if "forward" not in vars(module):
                module.forward = types.MethodType(_sliced_feed_forward, module)
                count += 1
            module._animate_slice_bytes = slice_bytes
    return count


def unchunk_feed_forward(model) -> int:
    """Undo chunk_feed_forward (benchmarks compare with and without); how many were chunked."""
    count = 0
    for module in model.modules():
        if "_animate_slice_bytes" in vars(module):
            del module._animate_slice_bytes
            module.__dict__.pop("forward", None)
            count += 1
    return count


def feed_forward_rows(module, hidden_states) -> int:
    """Rows of `hidden_states` one slice of a FeedForward takes (at least 1)."""
    width = module.__dict__.get("_animate_width")
    if width is None:  # the widest layer's outputs (a PEFT-wrapped Linear keeps out_features)
        width = max([getattr(m, "out_features", 0) for m in module.modules()] + [hidden_states.shape[-1]])
        module._animate_width = width
    return max(1, module._animate_slice_bytes // (width * hidden_states.element_size()))


def _sliced_feed_forward(self, hidden_states, *args, **kwargs):
    forward = type(self).forward
    step = feed_forward_rows(self, hidden_states)
    rows = hidden_states.numel() // max(1, hidden_states.shape[-1])
    if rows <= step:
        return forward(self, hidden_states, *args, **kwargs)
    flat = hidden_states.reshape(rows, hidden_states.shape[-1])
    out = None
    for start in range(0, rows, step):
        piece = forward(self, flat[start:start + step], *args, **kwargs)
        if out is None:  # filled in place: a list of pieces joined at the end would hold the output twice
            out = piece.new_empty((rows, piece.shape[-1]))
        out[start:start + len(piece)] = piece
    return out.reshape(*hidden_states.shape[:-1], out.shape[-1])


# ---------------------------------------------------------------- FreeNoise split inference
# diffusers wraps UNet blocks in SplitInferenceModule. The wrappers change module names and types, which
# breaks what has to find the plain blocks: LoRA loading (names) and re-enabling FreeNoise per clip (types).
# `split_paused` takes them off around those steps and puts them back after.

def _split_holders(unet):
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        for motion_module in getattr(block, "motion_modules", None) or []:
            yield motion_module, "proj_in"
            yield motion_module, "proj_out"
            yield motion_module.transformer_blocks, None
        for name in ("attentions", "resnets", "downsamplers", "upsamplers"):
            modules = getattr(block, name, None)
            if modules is not None:
                yield modules, None


def _wrapped(unet):
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule  # torch stack: kept out of light commands

    for holder, attr in _split_holders(unet):
        if attr is not None:
            if isinstance(getattr(holder, attr), SplitInferenceModule):
                yield holder, attr
        else:
            for i, module in enumerate(holder):
                if isinstance(module, SplitInferenceModule):
                    yield holder, i


def split_active(unet) -> bool:
    return next(_wrapped(unet), None) is not None


def unsplit(unet) -> bool:
    """Take the split wrappers off; True when there were some."""
    found = list(_wrapped(unet))
    for holder, key in found:
        if isinstance(key, str):
            setattr(holder, key, getattr(holder, key).module)
        else:
            holder[key] = holder[key].module
    return bool(found)


def set_split(pipe, sizes: dict | None) -> dict | None:
    """Put the split wrappers on with `sizes` (re-wrapping when they were on with other sizes) or, for None, take
    them off. The stack's pipeline is shared by every clip, so each clip sets it for itself."""
    if not hasattr(pipe, "enable_free_noise_split_inference"):
        sizes = None  # the SDXL and SparseCtrl pipelines have no FreeNoise
    current = split_sizes(pipe.unet)
    if current != sizes:
        unsplit(pipe.unet)
        if sizes:
            pipe.enable_free_noise_split_inference(**sizes)
    return sizes


def split_sizes(unet) -> dict | None:
    """The sizes of the split wrappers on `unet` (None when it has none): the motion modules' spatial split and
    the resnets' temporal split."""
    spatial = temporal = None
    for holder, key in _wrapped(unet):
        module = getattr(holder, key) if isinstance(key, str) else holder[key]
        if key == "proj_in" and spatial is None:
            spatial = module.split_size
        elif "input_tensor" in module.input_kwargs_to_split and temporal is None:
            temporal = module.split_size
    if spatial is None and temporal is None:
        return None
    return dict(spatial_split_size=spatial, temporal_split_size=temporal)


@contextmanager
def split_paused(pipe):
    """Run a block with the plain UNet blocks; the split wrappers come back afterwards if they were on."""
    sizes = split_sizes(pipe.unet)
    unsplit(pipe.unet)
    try:
        yield
    finally:
        if sizes:
            pipe.enable_free_noise_split_inference(**sizes)
