"""Motion adapters from a diffusers folder / hub repo, an original AnimateDiff single file, or a bare
diffusers-keyed state dict (AnimateDiff-Lightning)."""
from __future__ import annotations

from pathlib import Path

from .errors import AdapterError

ORIGINAL_MARKERS = (".temporal_transformer.", ".attention_blocks.")


def motion_file_format(keys: list[str]) -> str:
    """'original' (AnimateDiff checkpoints), 'diffusers' (Lightning-style bare state dict) or 'unknown'."""
    if any(m in k for k in keys for m in ORIGINAL_MARKERS):
        return "original"
    if any(".motion_modules." in k and (".attn1." in k or ".proj_in." in k) for k in keys):
        return "diffusers"
    return "unknown"


def load_motion_adapter(ref: str, *, kind: str, keys: list[str] | None = None, config: str | None = None,
                        weight_name: str | None = None, revision: str | None = None, dtype=None,
                        use_safetensors: bool | None = True):
    """Load a MotionAdapter. `kind` is folder | hub | file; `keys` are the file's tensor names (files only).
    A folder or hub repo loads its .safetensors weights only, unless `use_safetensors` says otherwise."""
    from diffusers import MotionAdapter

    if kind in ("folder", "hub") and not weight_name:
        return MotionAdapter.from_pretrained(ref, revision=revision, torch_dtype=dtype, use_safetensors=use_safetensors)

    if kind == "hub":
        from huggingface_hub import hf_hub_download

        ref = hf_hub_download(ref, weight_name, revision=revision)
    elif kind == "folder":
        ref = str(Path(ref) / weight_name)
    if keys is None and ref.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(ref, framework="pt") as fh:
            keys = list(fh.keys())
    # A pickle checkpoint (only reached when the user opted in) is an original AnimateDiff module.
    fmt = motion_file_format(keys) if keys is not None else "original"
    if fmt == "original":
        # Without `config` diffusers fetches one from the hub; a local config keeps it offline.
        kwargs = {"config": config} if config else {}
        return MotionAdapter.from_single_file(ref, torch_dtype=dtype, **kwargs)
    if fmt == "diffusers":
        from safetensors.torch import load_file

        adapter = (MotionAdapter.from_config(MotionAdapter.load_config(config)) if config else MotionAdapter())
        state = load_file(ref)
        try:
            adapter.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise AdapterError(f"{ref} does not fit the motion adapter layout "
                               f"({first[1].strip() if len(first) > 1 else first[0]}); "
                               "pass `config:` with the adapter's config folder") from exc
        return adapter.to(dtype) if dtype is not None else adapter
    raise AdapterError(f"{ref} holds no motion-module tensors: it is not an AnimateDiff motion adapter "
                       "(a motion LoRA goes under `adapters:`)")
