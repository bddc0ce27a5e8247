"""A cheap look at latents while they denoise: SD's 4 latent channels → RGB through one fixed linear map (the
well-known approximation of what the VAE would decode), no VAE call. Good enough to see a composition form."""
from __future__ import annotations

import io

# Rows: latent channels 0..3; columns: R, G, B (the SD1.x approximation used by many UIs' live previews).
LATENT_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
PREVIEW_SIDE = 128


def latent_preview_png(latents, side: int = PREVIEW_SIDE) -> bytes | None:
    """The middle frame of AnimateDiff latents (B×4×F×h×w, or B×4×h×w) as a small PNG; None for other shapes."""
    import numpy as np  # media library: loaded on use
    import torch  # torch stack: kept out of light commands
    from PIL import Image  # media library: loaded on use

    if not isinstance(latents, torch.Tensor) or latents.ndim not in (4, 5) or latents.shape[1] != 4:
        return None
    with torch.no_grad():
        frame = latents[0, :, latents.shape[2] // 2] if latents.ndim == 5 else latents[0]
        frame = frame.detach().to("cpu", torch.float32)  # 4×h×w: a few KB even at 512x512
        rgb = torch.einsum("chw,cr->hwr", frame, torch.tensor(LATENT_RGB))
        pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    h, w = pixels.shape[:2]
    scale = max(1, side // max(h, w))
    image = image.resize((w * scale, h * scale), Image.NEAREST)  # a latent pixel is 8x8 image pixels: show blocks
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
