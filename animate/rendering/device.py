"""Which device and dtype a render runs on, and the dtype its VAE decodes in."""
from __future__ import annotations

from animate.errors import ConfigError


def pick_device(requested: str | None = None) -> str:
    """cuda > mps > cpu, unless the user named one (checked, so a typo is one clear line)."""
    import torch  # torch stack: kept out of light commands

    if requested and requested != "auto":
        try:
            device = torch.device(requested)
        except (RuntimeError, ValueError):
            raise ConfigError(f"unknown device {requested!r}", where="--device",
                              hint="use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0 or (device.index or 0) >= count:
                raise ConfigError(f"device {requested!r} is not available here ({count} CUDA device(s))",
                                  where="--device", hint="use --device cpu or auto")
        elif device.type == "mps":
            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                raise ConfigError("device 'mps' is not available here", where="--device",
                                  hint="use --device cpu or auto")
        elif device.type != "cpu":
            raise ConfigError(f"unsupported device {requested!r}", where="--device",
                              hint="use auto, cpu, cuda, cuda:N or mps")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
          "bf16": "bfloat16", "bfloat16": "bfloat16"}


def pick_dtype(device: str, requested: str | None = None):
    """fp16 on GPUs, fp32 on CPU (safe default), unless the user named one."""
    import torch  # torch stack: kept out of light commands

    if requested and requested != "auto":
        try:
            return getattr(torch, DTYPES[requested])
        except KeyError:
            raise ConfigError(f"unknown dtype {requested!r}", where="--dtype",
                              hint="use fp32, fp16, bf16 or auto") from None
    return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32


def dtype_name(dtype) -> str:
    """torch.float16 → fp16 (the names --dtype takes)."""
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(dtype).replace("torch.", ""),
                                                                            str(dtype))


def safer_dtype(dtype):
    """The precision a numeric fault is retried in: fp32 after fp16 or bf16; None when already fp32."""
    import torch  # torch stack: kept out of light commands

    return None if dtype == torch.float32 else torch.float32


def float32():
    import torch  # torch stack: kept out of light commands

    return torch.float32


def decode_dtype(family: str, vae, dtype):
    """The VAE's dtype, as diffusers' own pipelines decode: SD1.5 in the run's dtype (fp16 on GPUs, whatever its
    config's `force_upcast` says: AnimateDiffPipeline ignores it); SDXL in fp32 where its config asks for the
    upcast (the SDXL VAE overflows in fp16). A chunk that still comes out NaN/inf or flat is decoded again in
    fp32 (Renderer._decode)."""
    if family == "sdxl" and getattr(vae.config, "force_upcast", False):
        return float32()
    return dtype
