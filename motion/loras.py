"""LoRA loading and weighted mixing: each adapter is loaded once and re-weighted with `set_adapters`;
weights fixed for a whole clip are fused into the UNet for speed and unfused before they change."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AdapterError

# What only SDXL LoRAs carry: a second text encoder, added embeddings, and transformer stacks deeper than
# one block (SD1.5 attention and motion modules have only transformer_blocks.0).
SDXL_MARKERS = ("text_encoder_2", "lora_te2_", "add_embedding")
DEEP_TRANSFORMER = re.compile(r"transformer_blocks[._][1-9]")


# Tensor names every LoRA format carries: PEFT lora_A/lora_B, Kohya lora_down/lora_up (lora_unet_* prefixes),
# old diffusers `.lora.down`, LyCORIS LoHa/LoKr factors.
LORA_MARKERS = ("lora", "hada_w", "lokr_w")
# What a .safetensors that is not a LoRA usually is, told by its tensor names: (markers, what it is, where it goes).
LOOKALIKES = (
    (("model.diffusion_model.", "first_stage_model.", "cond_stage_model."),
     "a full base-model checkpoint (UNet, VAE and text encoder in one file)", "use it as `model:`"),
    (("control_model.", "controlnet_cond_embedding", "controlnet_down_blocks"),
     "a ControlNet", "use it as `pose: {controlnet: ...}`"),
    (("motion_modules",), "a motion adapter (AnimateDiff motion module)", "use it as `motion_adapter:`"),
    (("conv_in.", "down_blocks."), "a bare UNet", "use the base model's folder as `model:`"),
    (("decoder.conv_in", "encoder.conv_in"), "a VAE", "use the base model's folder as `model:`"),
    (("text_model.", "embeddings.token_embedding"), "a text encoder", "use the base model's folder as `model:`"),
)


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA file targets, read from its tensor names."""

    motion: bool  # touches motion modules
    spatial: bool  # touches the image UNet / text encoder
    family: str  # sd15 | sdxl
    lora: bool = True  # holds LoRA weights at all
    looks_like: tuple[str, str] | None = None  # when not a LoRA: (what it seems to be, where it belongs)
    tensors: int = 0

    @property
    def kind(self) -> str:
        if self.motion and not self.spatial:
            return "motion"
        return "spatial" if not self.motion else "mixed"


def inspect_lora(keys: list[str]) -> LoraInfo:
    lora_keys = [k for k in keys if any(m in k.lower() for m in LORA_MARKERS)]
    if not lora_keys:
        looks_like = next(((what, use) for markers, what, use in LOOKALIKES
                           if any(m in k for k in keys for m in markers)), None)
        return LoraInfo(motion=False, spatial=False, family="sd15", lora=False, looks_like=looks_like,
                        tensors=len(keys))
    motion = any("motion_modules" in k for k in lora_keys)
    spatial = any("motion_modules" not in k for k in lora_keys)
    family = "sdxl" if any(m in k for k in keys for m in SDXL_MARKERS) or any(
        DEEP_TRANSFORMER.search(k) for k in keys) else "sd15"
    return LoraInfo(motion=motion, spatial=spatial, family=family, tensors=len(keys))


FAMILY_LABELS = {"sd15": "SD1.5", "sdxl": "SDXL"}
FAMILY_EXAMPLES = {"sd15": "lcm-lora-sd15", "sdxl": "lcm-lora-sdxl"}


def check_slot(info: LoraInfo, kind: str, label: str, family: str = "sd15") -> None:
    """Refuse a LoRA in a slot it cannot serve (the silent no-ops users of other tools hit), or made for
    another base-model `family` (sd15 | sdxl) than the base's."""
    if not info.lora and info.looks_like:
        what, use = info.looks_like
        raise AdapterError(f"{label} is not a LoRA: it looks like {what}; {use}, and give a LoRA file here")
    if not info.lora:
        raise AdapterError(f"{label} is not a LoRA: none of its {info.tensors} tensors is a LoRA weight "
                           "(lora_A/lora_B, lora_down/lora_up); give a LoRA file here")
    if info.family != family:
        ours, base = FAMILY_LABELS[info.family], FAMILY_LABELS[family]
        raise AdapterError(f"{label} is an {ours} LoRA and cannot be applied to an {base} model; "
                           f"use an {base} LoRA (e.g. {FAMILY_EXAMPLES[family]}), or an {ours} base model")
    if kind == "lcm" and info.kind == "motion":
        raise AdapterError(f"{label} is a motion LoRA (it only targets motion modules) but sits in the LCM slot; "
                           f"use an LCM-LoRA there (e.g. {FAMILY_EXAMPLES[family]}) and list the motion LoRA with "
                           "kind: motion")
    if kind == "motion" and info.kind == "spatial":
        raise AdapterError(f"{label} targets no motion modules, so it is not a motion LoRA; "
                           "set kind: lcm or kind: style, or use an AnimateDiff motion LoRA")


def _split_file(path: Path) -> tuple[str, str]:
    return str(path.parent), path.name


def pick_weight_name(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(files) == 1:
        return files[0]
    if not files:
        raise AdapterError(f"{folder} holds no .safetensors LoRA file")
    raise AdapterError(f"{folder} holds several .safetensors files ({', '.join(files)}); "
                       "pick one with weight_name")


def load_lora(pipe, ref: str, *, kind: str, adapter_name: str, weight_name: str | None = None,
              revision: str | None = None, allow_pickle: bool = False) -> None:
    """Load one LoRA into `pipe` under `adapter_name` (kind: hub | folder | file); safetensors unless the
    user opted in to pickle files (torch then loads them with weights_only=True)."""
    if kind == "file":
        location, weight_name = _split_file(Path(ref))
    elif kind == "folder":
        location, weight_name = ref, weight_name or pick_weight_name(Path(ref))
    else:
        location = ref
    before = _adapter_names(pipe)
    try:
        safetensors = not (allow_pickle and str(weight_name or "").endswith((".bin", ".pt", ".pth", ".ckpt")))
        pipe.load_lora_weights(location, weight_name=weight_name, adapter_name=adapter_name,
                               use_safetensors=safetensors, **({"revision": revision} if revision else {}))
    except (RuntimeError, ValueError, KeyError) as exc:
        _clean_partial(pipe, adapter_name, before)
        raise AdapterError(f"{ref} does not fit this model: {_first_line(exc)}") from exc
    except Exception as exc:  # peft raises its own types (e.g. NoMatchingPeftModuleError)
        if type(exc).__module__.startswith(("peft", "diffusers")):
            _clean_partial(pipe, adapter_name, before)
            raise AdapterError(f"{ref} does not fit this model: {_first_line(exc)}") from exc
        raise
    if adapter_name not in _adapter_names(pipe):
        raise AdapterError(f"{ref} matched no layer of this model; is it a LoRA for SD1.5 / AnimateDiff?")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    for line in text:
        if "size mismatch" in line or "not found" in line:
            return re.sub(r"\s+", " ", line.strip())[:300]
    return (text[0] if text else type(exc).__name__)[:300]


def _clean_partial(pipe, adapter_name: str, before: set[str]) -> None:
    if adapter_name in _adapter_names(pipe) and adapter_name not in before:
        try:
            pipe.delete_adapters(adapter_name)
        except Exception:  # best effort: the load already failed
            pass


def _adapter_names(pipe) -> set[str]:
    try:
        return {n for names in pipe.get_list_adapters().values() for n in names}
    except Exception:
        return set()


def progress_at(step: int, steps: int) -> float:
    """Denoising progress of `step` (0-based): 0.0 at the first step, 1.0 at the last."""
    return 0.0 if steps <= 1 else step / (steps - 1)


def schedule_value(points: dict, progress: float) -> float:
    """A piecewise-linear schedule {progress: value} at `progress`; before the first point and after the last
    the nearest point's value holds."""
    keys = sorted(points)
    if not keys:
        raise AdapterError("a weight schedule needs at least one point, e.g. {0.0: 1.0}")
    if progress <= keys[0]:
        return float(points[keys[0]])
    for a, b in zip(keys, keys[1:]):
        if progress <= b:
            t = (progress - a) / (b - a)
            return float(points[a] + (points[b] - points[a]) * t)
    return float(points[keys[-1]])


def is_scheduled(weight) -> bool:
    """True for a weight that changes between steps: a (start, end) ramp or a {progress: weight} schedule."""
    return isinstance(weight, (tuple, dict))


def weight_at(weight, step: int, steps: int) -> float:
    """A weight at denoising `step` (0-based): a number, a (start, end) ramp moving linearly, or a
    piecewise-linear {progress: weight} schedule over progress 0.0 (first step) … 1.0 (last step)."""
    if isinstance(weight, dict):
        return schedule_value(weight, progress_at(step, steps))
    if not isinstance(weight, tuple):
        return float(weight)
    start, end = weight
    return float(start) if steps <= 1 else float(start + (end - start) * step / (steps - 1))


def weight_label(weight) -> str:
    if isinstance(weight, dict) and set(weight) != {"start", "end"}:
        return "→".join(f"{float(v):g}@{float(k):g}" for k, v in sorted(weight.items(), key=lambda kv: float(kv[0])))
    if isinstance(weight, dict):
        weight = (weight["start"], weight["end"])
    return f"{weight[0]:g}→{weight[1]:g}" if isinstance(weight, tuple) else f"{weight:g}"


class LoraMixer:
    """Applies a clip's adapter weights to a pipeline, fusing when asked and skipping work already done."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.fused: tuple | None = None  # (names, weights) currently fused into the weights
        self.active: tuple | None = None
        self._pristine: list = []  # (parameter, its value before fusing) for every weight fusing changes

    def apply(self, names: list[str], weights: list[float], fuse: bool) -> None:
        state = (tuple(names), tuple(float(w) for w in weights))
        if fuse and self.fused == state:
            return
        self.unfuse()
        if not names:
            if _adapter_names(self.pipe):
                self.pipe.disable_lora()
            self.active = state
            return
        self.pipe.enable_lora()
        self.pipe.set_adapters(list(names), adapter_weights=list(state[1]))
        self.active = state
        if fuse:
            self._pristine = [(p, p.detach().to("cpu", copy=True)) for p in self._fused_parameters(names)]
            self.fused = state  # before fusing, so a fuse that fails part way (out of memory) is taken back out
            try:
                self.pipe.fuse_lora(components=self._components(), lora_scale=1.0, adapter_names=list(names))
            except BaseException:
                self.unfuse()
                raise

    def unfuse(self) -> None:
        """Take fused LoRA weights back out of the model (before loading another LoRA or re-weighting).

        PEFT unfuses by subtracting what it added, and (w + d) - d is not w in floating point: a long-lived
        renderer would drift a little with every re-weighting, so the same clip would render differently
        depending on what came before. The weights are put back exactly from the copy taken before fusing."""
        if self.fused is not None:
            import torch

            self.pipe.unfuse_lora(components=self._components())  # PEFT's own record of what is merged
            with torch.no_grad():  # in place, so the tensors' version counters (the embedding cache's key) move
                for param, value in self._pristine:
                    param.copy_(value)
            self._pristine = []
            self.fused = None

    def _fused_parameters(self, names) -> list:
        """The base-layer weights and biases of every LoRA layer one of `names` touches."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        wanted, found = set(names), []
        for component in self._components():
            model = getattr(self.pipe, component, None)
            if model is None:
                continue
            for module in model.modules():
                if isinstance(module, BaseTunerLayer) and wanted & _layer_adapters(module):
                    base = module.get_base_layer()
                    # Sequential CPU offload leaves meta tensors in the model (accelerate keeps the values).
                    found += [p for p in (getattr(base, "weight", None), getattr(base, "bias", None))
                              if p is not None and not p.is_meta]
        return found

    def set_weights(self, names: list[str], weights: list[float]) -> None:
        """Change weights between denoising steps (unfused only)."""
        if self.fused is not None:
            raise AdapterError("cannot change fused LoRA weights mid-clip")
        self.pipe.set_adapters(list(names), adapter_weights=[float(w) for w in weights])

    def _components(self) -> list[str]:
        return sorted(self.pipe.get_list_adapters().keys()) or ["unet"]


def _layer_adapters(module) -> set[str]:
    """The adapters a PEFT layer holds, whatever its kind (LoRA keeps them in lora_A/lora_B, LoHa in hada_*)."""
    return {name for attr in module.adapter_layer_names for name in getattr(module, attr, {})}
