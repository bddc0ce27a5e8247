"""animate.render.loading."""
from __future__ import annotations
from typing import TYPE_CHECKING
from animate.errors import ModelError
from animate.models.sources import Source, check_reachable
from animate.models.weights import check_pickle, check_weights, pickle_file

if TYPE_CHECKING:
    from animate.render.renderer import Renderer, Stack


def load_control_model(renderer: Renderer, stack: Stack, cls, src: Source, field: str, what: str, *, fix: str):
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
