"""The parts every tiny kit builder shares: the seed, the byte-level CLIP tokenizer and random LoRAs."""
from __future__ import annotations
from pathlib import Path


SEED = 1234


def seeded(offset: int):
    import torch  # torch stack: kept out of light commands

    torch.manual_seed(SEED + offset)


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's byte → printable-character table (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def make_tokenizer():
    """A byte-level CLIP tokenizer built without the hub: 256 byte symbols, their `</w>` forms, BOS/EOS."""
    from transformers import CLIPTokenizer  # torch stack: kept out of light commands

    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": i + len(symbols) for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77), len(vocab)


def save_lora(unet, pattern: str, adapter: str, folder: Path, weight_name: str, offset: int) -> None:
    from diffusers import StableDiffusionPipeline  # torch stack: kept out of light commands
    from peft import LoraConfig  # torch stack: kept out of light commands
    from peft.utils import get_peft_model_state_dict  # torch stack: kept out of light commands

    seeded(offset)
    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=pattern, init_lora_weights=False)
    unet.add_adapter(cfg, adapter_name=adapter)
    # LoRA B matrices start random here (init_lora_weights=False); scale them so effects stay moderate.
    import torch

    with torch.no_grad():
        for name, p in unet.named_parameters():
            if f"lora_B.{adapter}" in name:
                p.mul_(0.5)
    state = get_peft_model_state_dict(unet, adapter_name=adapter)
    StableDiffusionPipeline.save_lora_weights(
        str(folder), unet_lora_layers=state, weight_name=weight_name, safe_serialization=True,
    )
    unet.unload_lora()
