"""Numeric faults: NaN/inf values and frames that are one flat colour (black, usually) after denoising and
after each decoded chunk. fp16 overflow shows up this way; a retry in a wider precision usually fixes it."""
from __future__ import annotations

# A decoded frame (values in [-1, 1]) whose pixels all lie within one 8-bit level of each other is flat: even a
# night sky or a fade to black keeps more variation than that.
FLAT_RANGE = 2 / 255
BLACK_LEVEL = -1 + 8 / 255


def latents_fault(latents) -> str | None:
    """What is wrong with denoised latents (B×C×F×H×W), or None."""
    import torch  # torch stack: kept out of light commands

    if not torch.isfinite(latents).all():
        return "the denoiser produced NaN/inf latents"
    per_frame = latents.float().transpose(1, 2).flatten(2)  # B×F×(C·H·W)
    flat = (per_frame.amax(-1) - per_frame.amin(-1)) == 0
    if flat.any():
        return f"the denoiser produced constant latents (frame {_first(flat)})"
    return None


def frames_fault(piece, first_frame: int = 0) -> str | None:
    """What is wrong with a decoded chunk (N×3×H×W, about [-1, 1]) whose first frame is `first_frame`, or None."""
    import torch  # torch stack: kept out of light commands

    if not torch.isfinite(piece).all():
        return f"the VAE produced NaN/inf values (frames from {first_frame})"
    values = piece.float().clamp(-1, 1).flatten(1)
    flat = (values.amax(-1) - values.amin(-1)) <= FLAT_RANGE
    if flat.any():
        index = _first(flat)
        what = "black" if values[index].amax() <= BLACK_LEVEL else "a single flat colour"
        return f"the VAE produced frame {first_frame + index} {what}"
    return None


def _first(mask) -> int:
    return int(mask.flatten().nonzero()[0].item())
