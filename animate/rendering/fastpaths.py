"""Speed-ups around the pipeline call that leave the pictures as they are: text embeddings cached across clips,
CPU threads capped to the CPUs this process may use, the VAE decode chunk sized from free memory (PyTorch's
allocator's included), the UNet's dtype and device read without a walk over its modules, frames made uint8 on the
device, and the opt-in `--compile` of the UNet. Each is measured in benchmarks/perf.py or benchmarks/gpu_check.py
and tested in tests/rendering/test_fastpaths.py."""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from animate.util.cpus import usable_cpus
import inspect

EMBED_CACHE_SIZE = 64  # prompt sets kept per text encoder (a 77×768 fp16 embedding is 118 kB)
THREAD_ENV = ("ANIMATE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def set_cpu_threads() -> int:
    """torch's default thread count is the machine's cores, which oversubscribes a process pinned to fewer
    (containers, taskset): threads then spin against each other. Lower it to the usable CPUs, unless the user
    chose a count (ANIMATE_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS) or the process already runs fewer."""
    import torch  # torch stack: kept out of light commands

    wanted = os.environ.get("ANIMATE_THREADS")
    if wanted and wanted.isdigit() and int(wanted) > 0:
        torch.set_num_threads(int(wanted))
    elif not any(os.environ.get(v) for v in THREAD_ENV) and torch.get_num_threads() > usable_cpus():
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


# ------------------------------------------------------------------------------------ text embeddings
class EmbeddingCache:
    """encode_prompt results of one text encoder, keyed on everything that decides them."""

    def __init__(self, size: int = EMBED_CACHE_SIZE):
        self.entries: OrderedDict = OrderedDict()
        self.size, self.hits, self.misses = size, 0, 0

    def get(self, key):
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return value

    def put(self, key, value) -> None:
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def text_encoder_state(pipe) -> tuple:
    """What the text encoders compute with right now (SDXL has two): each one's identity, dtype, device, every
    parameter's storage and in-place version (fusing a LoRA into it, or a new adapter, changes them) and each
    LoRA layer's active adapters, merged adapters and scales (set_adapters changes only these)."""
    state = []
    for te_name, tok_name in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
        te = getattr(pipe, te_name, None)
        if te is None:
            continue
        state += [te_name, id(te), id(getattr(pipe, tok_name, None)), str(te.dtype), str(te.device)]
        state += [(p.data_ptr(), p._version) for p in te.parameters()]
        for name, module in te.named_modules():
            scaling = getattr(module, "scaling", None)
            if isinstance(scaling, dict):  # a PEFT LoRA layer
                state.append((name, tuple(getattr(module, "active_adapters", ())),
                              tuple(getattr(module, "merged_adapters", ())), tuple(sorted(scaling.items())),
                              bool(getattr(module, "disable_adapters", False))))
    return tuple(state)


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_hashable(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    return str(value) if type(value).__name__ == "device" else value


def cache_text_embeddings(pipe) -> EmbeddingCache | None:
    """Wrap `pipe.encode_prompt` (which FreeNoise's travel path calls too) so that the same prompts through the
    same text encoders in the same LoRA state are encoded once; the cache lives on the text encoder, so it is
    shared by every pipeline built from the stack (pose clips' ControlNet pipelines). Whatever the pipeline's
    signature (SD1.5's, SDXL's with prompt_2 and pooled embeddings), every argument is in the key; given
    embedding tensors are passed through. Returns the cache."""

    import torch  # torch stack: kept out of light commands

    te = getattr(pipe, "text_encoder", None)
    if te is None or not hasattr(pipe, "encode_prompt"):
        return None
    cache = te.__dict__.get("_animate_embeddings")
    if cache is None:
        cache = EmbeddingCache()
        te.__dict__["_animate_embeddings"] = cache
    if getattr(pipe.encode_prompt, "_animate_cached", False):
        return cache
    original = pipe.encode_prompt
    signature = inspect.signature(original)

    def encode_prompt(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if any(isinstance(v, torch.Tensor) for v in bound.arguments.values()):
            return original(*args, **kwargs)  # given tensors: nothing to encode
        key = (tuple((k, _hashable(v)) for k, v in bound.arguments.items()), text_encoder_state(pipe))
        found = cache.get(key)
        if found is None:
            found = tuple(t.detach().clone() if t is not None else None for t in original(*args, **kwargs))
            cache.put(key, found)
        return tuple(t.clone() if t is not None else None for t in found)

    encode_prompt._animate_cached = True
    pipe.encode_prompt = encode_prompt
    return cache


# -------------------------------------------------------------------------------------- decode chunk
def free_bytes(device: str) -> int | None:
    """Memory free for new tensors. CUDA: what the driver has free plus what PyTorch's allocator holds cached but
    unused (`mem_get_info` does not count the cache, which after a denoise can be gigabytes that new tensors
    reuse without a cudaMalloc). CPU: MemAvailable (or free pages). None on MPS."""
    if device.startswith("cuda"):
        import torch  # torch stack: kept out of light commands

        dev = torch.device(device)
        free, _ = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(free) + max(0, int(cached))
    if device == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:  # not Linux: ask sysconf below
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def decode_bytes_per_frame(vae, height: int, width: int, live_tensors: int = 4) -> int:
    """An upper estimate of what decoding one frame holds at its peak: the largest activation of the decoder's
    up blocks (channels × pixels after each upsampling), `live_tensors` of them alive at once, in the VAE's
    dtype. SD1.5's VAE at 512²: 256 channels × 512² × 4 B × 4 ≈ 1.07 GB."""
    channels = list(reversed(vae.config.block_out_channels))
    levels = len(channels)
    scale = 2 ** (levels - 1)
    h, w = max(1, height // scale), max(1, width // scale)
    largest = 0
    for i, c in enumerate(channels):
        side = 2 ** (i + 1) if i < levels - 1 else 2 ** i
        largest = max(largest, c * h * w * side * side)
    itemsize = next(vae.parameters()).element_size()
    return largest * itemsize * live_tensors


def fit_decode_chunk(requested: int, vae, device: str, height: int, width: int, share: float = 0.7) -> int:
    """The decode chunk: the clip's `decode_chunk`, lowered to what `share` of the free memory holds, so a
    small GPU decodes in pieces up front instead of failing and halving."""
    free = free_bytes(device)
    if free is None:
        return requested
    fits = int(free * share // max(1, decode_bytes_per_frame(vae, height, width)))
    return max(1, min(requested, fits))


# ------------------------------------------------------------------------------------- frames to uint8
def frames_to_uint8(images, keep_float: bool = False):
    """Decoded images (N×3×H×W, about [-1, 1], on the device) → (uint8 N×H×W×3 numpy, the [0,1] float32 frames
    or None). The arithmetic of diffusers' postprocessing and animate's to_uint8 (denormalize, ×255, round half
    to even) in fp32 on the device, so only the uint8 bytes cross to the host: a quarter of the fp32 ones, and
    no clamp and round over the clip on the CPU. Bit for bit the frames of the host path."""
    import torch  # torch stack: kept out of light commands

    unit = (images.to(torch.float32) * 0.5 + 0.5).clamp(0, 1)
    frames = (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    floats = unit.permute(0, 2, 3, 1).cpu().numpy() if keep_float else None
    return frames, floats


# ----------------------------------------------------------------------------------- motion adapter
def strip_motion_adapter(pipe) -> int:
    """Let go of the MotionAdapter's tensors once they have been copied into the UNet
    (UNetMotionModel.from_unet2d loads them in): nothing reads them afterwards, but `pipe.to(device)` would move
    them too (SD1.5's v1.5-2 adapter: 453 M parameters, 0.9 GB in fp16). The module stays registered, empty, for
    its config (FreeNoise reads `motion_max_seq_length` from it). Returns the parameters let go."""
    adapter = getattr(pipe, "motion_adapter", None)
    if adapter is None:
        return 0
    import torch  # torch stack: kept out of light commands

    count = sum(p.numel() for p in adapter.parameters())
    dtype = next(adapter.parameters(), torch.empty(0)).dtype
    adapter._modules.clear()  # its blocks, and with them every weight
    adapter._parameters.clear()
    adapter._buffers.clear()
    # An empty tensor keeps `adapter.dtype` and `.device` answerable (pipe.to() asks every component).
    adapter.register_buffer("_animate_stripped", torch.empty(0, dtype=dtype), persistent=False)
    return count


# ------------------------------------------------------------------------------------------- compile
FRAMES_DIM = 2  # UNetMotionModel's sample is (batch, channels, frames, height, width)


def compile_unet(pipe, device: str, backend=True) -> dict:
    """torch.compile the UNet in place, on CUDA in channels_last. The module stays the same object (LoRA loading,
    fusing, FreeNoise and the memory ladder keep working on it): like `Module.compile`, the compiled call is the
    module's `_compiled_call_impl`, here behind a wrapper that marks the frames dimension of each call's sample
    dynamic, so clips of other lengths reuse the graphs, and that runs the plain module while `set_eager` says
    so (windowed clips, whose window loops dynamo would unroll, and unfused LoRA weights, which are Python floats
    it would guard on). Fused LoRA weights change tensors, not the graph. `backend` True means inductor; a name
    or a callable is passed to torch.compile as it is."""
    import torch  # torch stack: kept out of light commands

    unet = pipe.unet
    name = "inductor" if backend is True else backend
    record = {"backend": name if isinstance(name, str) else getattr(name, "__name__", str(name))}
    if device.startswith("cuda"):
        unet.to(memory_format=torch.channels_last)
        record["channels_last"] = True
    compiled = torch.compile(unet._call_impl, backend=name)

    def call(*args, **kwargs):
        if unet.__dict__.get("_animate_eager"):
            return unet._call_impl(*args, **kwargs)
        sample = args[0] if args else kwargs.get("sample")
        if isinstance(sample, torch.Tensor) and sample.dim() == 5:
            torch._dynamo.maybe_mark_dynamic(sample, FRAMES_DIM)
            # FreeNoise hands the UNet one prompt embedding per frame: (batch·frames, tokens, channels).
            embeddings = kwargs.get("encoder_hidden_states")
            if isinstance(embeddings, torch.Tensor):
                torch._dynamo.maybe_mark_dynamic(embeddings, 0)
        return compiled(*args, **kwargs)

    unet._compiled_call_impl = call
    return record


def set_eager(unet, why: str | None) -> str | None:
    """Run a compiled UNet eagerly for the next calls (`why` says the reason), or compiled again (None)."""
    unet.__dict__["_animate_eager"] = why
    return why


# ------------------------------------------------------------------------------ model dtype and device
def quick_dtype_and_device(model) -> bool:
    """Make `model.dtype` and `model.device` read the first parameter instead of walking every submodule.

    diffusers' ModelMixin answers both by first looking through all submodules for a layerwise-casting or
    group-offloading hook; the UNet asks for its dtype on every step (`t_emb.to(self.dtype)`), and with
    LoRA layers a UNet has thousands of modules: ~6 ms a step on the tiny kit, time a GPU waits before the step's
    first kernel. animate installs neither hook, so the first floating parameter gives diffusers' own answer;
    a model that has one (or keeps modules in fp32) keeps diffusers' properties. The class is swapped for a
    subclass of the same name, once; True when it was."""
    cls = type(model)
    if getattr(cls, "_animate_quick_dtype", False):
        return False
    if getattr(model, "_keep_in_fp32_modules", None) or any(hasattr(m, "_diffusers_hook") for m in model.modules()):
        return False
    model.__class__ = _quick_class(cls)
    return True


_QUICK: dict = {}


def _quick_class(cls):
    if cls not in _QUICK:
        def first_parameter(self):
            return next((p for p in self.parameters() if p.is_floating_point()), None)

        def dtype(self):
            p = first_parameter(self)
            return p.dtype if p is not None else cls.dtype.fget(self)

        def device(self):
            p = first_parameter(self)
            return p.device if p is not None else cls.device.fget(self)

        _QUICK[cls] = type(cls.__name__, (cls,), {"dtype": property(dtype), "device": property(device),
                                                 "_animate_quick_dtype": True, "__module__": cls.__module__,
                                                 "__qualname__": cls.__qualname__})
    return _QUICK[cls]


def derived_pipeline(pipeline_class, stack_pipe, **kwargs):
    """`pipeline_class.from_pipe(stack_pipe, ...)` with the stack's UNet handed over by name: from_pipe keeps only
    components of exactly the classes the new pipeline's signature names, and the stack's UNet is a subclass
    (quick_dtype_and_device)."""
    return pipeline_class.from_pipe(stack_pipe, unet=stack_pipe.unet, **kwargs)
