"""A fast path for diffusers' FreeNoise blocks when their frames are one window.

Every SD1.5 stack converts its motion blocks to FreeNoise blocks once, before any LoRA wraps them (diffusers
converts by copying state dicts, which fails once PEFT layers exist), so that any later clip can use context
windows. A clip that fits one window then still pays for FreeNoise's bookkeeping in every motion block: a
zeroed accumulator, per-frame weights, a weighted sum and a division (x·w/w), and a split-where-concatenate —
measured at 6 % of a tiny-kit clip. With one window all of that is the identity, so these blocks run the plain
transformer-block arithmetic instead: exactly diffusers' AnimateDiff without FreeNoise, and within float rounding
of its one-window FreeNoise. Clips with several windows run diffusers' own FreeNoise forward, unchanged.
"""
from __future__ import annotations

import types


def install_one_window_path(unet) -> int:
    """Give each FreeNoise block of `unet` the one-window fast path (once); how many blocks got it."""
    from diffusers.models.attention import FreeNoiseTransformerBlock

    count = 0
    for module in unet.modules():
        if isinstance(module, FreeNoiseTransformerBlock) and "forward" not in vars(module):
            module.forward = types.MethodType(_forward, module)
            count += 1
    return count


def _forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
             cross_attention_kwargs=None, *args, **kwargs):
    import torch
    from diffusers.models.attention import FreeNoiseTransformerBlock, _chunked_feed_forward

    # hidden_states: [batch × pixels, frames, channels]; one window exactly when the frames are its length
    # (diffusers refuses fewer, and more means several windows).
    # A compiled UNet runs only clips of one window (animate...fastpaths.compile_unet): there, comparing the frames
    # with the window length would fix the frame count in the graph and recompile for every clip length.
    if not torch.compiler.is_compiling() and hidden_states.size(1) != self.context_length:
        return FreeNoiseTransformerBlock.forward(self, hidden_states, attention_mask, encoder_hidden_states,
                                                 encoder_attention_mask, cross_attention_kwargs, *args, **kwargs)
    cross_attention_kwargs = dict(cross_attention_kwargs or {})
    norm = self.norm1(hidden_states)
    if self.pos_embed is not None:
        norm = self.pos_embed(norm)
    hidden_states = self.attn1(norm, encoder_hidden_states=encoder_hidden_states if self.only_cross_attention
                               else None, attention_mask=attention_mask, **cross_attention_kwargs) + hidden_states
    if hidden_states.ndim == 4:
        hidden_states = hidden_states.squeeze(1)
    if self.attn2 is not None:
        norm = self.norm2(hidden_states)
        if self.pos_embed is not None and self.norm_type != "ada_norm_single":
            norm = self.pos_embed(norm)
        hidden_states = self.attn2(norm, encoder_hidden_states=encoder_hidden_states,
                                   attention_mask=encoder_attention_mask, **cross_attention_kwargs) + hidden_states
    norm = self.norm3(hidden_states)
    ff = (_chunked_feed_forward(self.ff, norm, self._chunk_dim, self._chunk_size) if self._chunk_size is not None
          else self.ff(norm))
    hidden_states = ff + hidden_states
    if hidden_states.ndim == 4:
        hidden_states = hidden_states.squeeze(1)
    return hidden_states
