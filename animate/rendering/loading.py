"""Loading models into a stack: checks before a load (pins, pickles, reachability), ControlNet-shaped models
loaded once per stack, and a full UNet checkpoint with the added embedding diffusers drops."""
from __future__ import annotations
from typing import TYPE_CHECKING
from animate.errors import ModelError
from animate.models.sources import Source, check_reachable
from animate.models.weights import check_pickle, check_weights, pickle_file
from pathlib import Path
from animate.models.configs import read_json
from animate.models.sources import hub_snapshot

if TYPE_CHECKING:
    from animate.rendering.stack import Stack


def load_control_model(renderer, stack: Stack, cls, src: Source, field: str, what: str, *, fix: str):
    """A ControlNet-like model (`cls`: ControlNetModel, SparseControlNetModel) from a folder, the hub or one
    file, in the run's dtype on its device; it must fit the stack's UNet. Every failure is one line."""
    check_reachable(src, field)
    check_before_load(src, field)
    try:
        if src.kind == "file":
            kwargs = {"config": src.config} if src.config else {}
            net = cls.from_single_file(src.ref, torch_dtype=renderer.dtype, **kwargs)
        else:
            net = cls.from_pretrained(src.ref, torch_dtype=renderer.dtype, revision=src.revision,
                                      use_safetensors=safetensors_only(src))
    except (OSError, ValueError, RuntimeError) as exc:
        # A single file holds no config; without `config:` diffusers guesses one from the hub (the SD1.5
        # canny ControlNet's), which is unreachable offline and wrong for any other shape.
        hint = (f"a single-file {what} needs its config: {{source: FILE, config: FOLDER-WITH-config.json}}"
                if src.kind == "file" and not src.config else None)
        raise ModelError(f"cannot load {what} {src.describe()}: {short_reason(exc).rstrip('.')}", where=field,
                         hint=hint) from None
    unet = stack.pipe.unet.config
    if (tuple(net.config.block_out_channels) != tuple(unet.block_out_channels)
            or net.config.cross_attention_dim != unet.cross_attention_dim):
        raise ModelError(f"{what} {src.describe()} does not fit the base model (channels "
                         f"{list(net.config.block_out_channels)} vs {list(unet.block_out_channels)}, "
                         f"cross-attention {net.config.cross_attention_dim} vs {unet.cross_attention_dim})",
                         where=field, hint=fix)
    return net.to(renderer.device)


def check_before_load(src: Source, field: str) -> None:
    """The checks that run again right before a load (the runner ran them once for the plan): the pin, the
    .safetensors headers, and a pickle file (allowed by the user) unpickled with weights_only=True."""
    check_weights(src, field)
    pickle = pickle_file(src)
    if pickle is not None and src.allow_pickle:
        check_pickle(pickle, field)


def safetensors_only(src: Source) -> bool | None:
    """`use_safetensors` for diffusers: True, so a folder or hub repo never falls back to a pickle .bin
    quietly; None (prefer safetensors, allow .bin, which diffusers loads with weights_only=True) only where the
    user set allow_pickle."""
    return None if src.allow_pickle else True


def short_reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def load_full_unet(unet, src: Source) -> None:
    """Load a full UNet state dict (SDXL-Lightning's `*_unet.safetensors`) into the pipeline's UNet, which has the
    base's config: every 2D layer must be in the file, and nothing else; the motion modules stay the adapter's."""
    from safetensors.torch import load_file  # torch stack: kept out of light commands

    path = src.local_file()
    if src.kind == "hub":
        from huggingface_hub import hf_hub_download  # hub client: slow to import, loaded on use

        if not src.weight_name:
            raise ModelError(f"unet {src.ref} needs the file to load", where="unet",
                             hint="give {source: REPO, weight_name: sdxl_lightning_4step_unet.safetensors}")
        path = Path(hf_hub_download(src.ref, src.weight_name, revision=src.revision))
    if path is None or path.suffix != ".safetensors":
        raise ModelError(f"unet {src.describe()} must be one .safetensors UNet file", where="unet")
    state = load_file(str(path))
    try:
        result = unet.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit the base's UNet
        line = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc).splitlines()[0])
        raise ModelError(f"unet {src.describe()} does not fit the base model's UNet ({line[:200]})", where="unet",
                         hint="use a UNet checkpoint made for this base model") from None
    missing = [k for k in result.missing_keys if ".motion_modules." not in k]
    if result.unexpected_keys or missing:
        what = (f"{len(result.unexpected_keys)} tensor(s) the base's UNet lacks (e.g. {result.unexpected_keys[0]})"
                if result.unexpected_keys else f"no {missing[0]} (and {len(missing) - 1} more)")
        raise ModelError(f"unet {src.describe()} does not fit the base model's UNet: {what}", where="unet",
                         hint="use a full UNet checkpoint made for this base model")


# ---------------------------------------------------------------- diffusers' gap: the added embedding
# UNetMotionModel.from_unet2d (diffusers 0.42) copies every 2D layer except `add_embedding`, SDXL's text/time
# embedding: AnimateDiffSDXLPipeline then runs it with fresh random weights (raised in diffusers PR #6721's review,
# left for later). The renderer puts the base's own weights back, read from its files.
ADDED_EMBEDDING_LDM = {"label_emb.0.0.": "linear_1.", "label_emb.0.2.": "linear_2."}


def _unet_files(src: Source) -> list[Path]:
    if src.kind == "file":
        return [Path(src.ref)]
    folder = Path(src.ref) / "unet" if src.kind == "folder" else None
    if src.kind == "hub":
        snapshot = hub_snapshot(src)
        folder = snapshot / "unet" if snapshot is not None else None
    if folder is None:
        return []
    index = read_json(folder / "diffusion_pytorch_model.safetensors.index.json")
    if index is not None:
        return sorted({folder / name for key, name in index.get("weight_map", {}).items()
                       if key.startswith("add_embedding.")})
    single = folder / "diffusion_pytorch_model.safetensors"
    return [single] if single.is_file() else []


def added_embedding_state(src: Source) -> dict:
    """The base's `add_embedding.*` tensors (diffusers names), read from its UNet file(s) or checkpoint."""
    from safetensors import safe_open  # torch stack: kept out of light commands

    out = {}
    for path in _unet_files(src):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                if src.kind != "file" and key.startswith("add_embedding."):
                    out[key.removeprefix("add_embedding.")] = fh.get_tensor(key)
                elif src.kind == "file" and key.startswith("model.diffusion_model.label_emb."):
                    rest = key.removeprefix("model.diffusion_model.")
                    for old, new in ADDED_EMBEDDING_LDM.items():
                        if rest.startswith(old):
                            out[new + rest.removeprefix(old)] = fh.get_tensor(key)
    return out


def restore_added_embedding(unet, src: Source) -> None:
    """Give an SDXL motion UNet its base's added text/time embedding (see above); a base whose files hold none
    (a UNet without `text_time`) is left alone."""
    embedding = getattr(unet, "add_embedding", None)
    if embedding is None:
        return
    state = added_embedding_state(src)
    if not state:
        raise ModelError(f"cannot find the added text/time embedding (add_embedding) in {src.describe()}",
                         where="model", hint="give the SDXL base as a diffusers folder or hub id")
    embedding.load_state_dict({k: v.to(next(embedding.parameters()).dtype) for k, v in state.items()})
