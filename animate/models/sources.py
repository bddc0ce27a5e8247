"""Model sources: a hub id, a local diffusers folder or a single file; the known-model registry; safety.

Resolving a source never downloads anything: it classifies the value, checks local paths exist and
refuses pickle files unless asked. Loading happens in `render` (and `motion/`).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from animate.errors import ModelError
from animate.models.tiny import ensure_kit
from animate.models.tiny_xl import ensure_xl
from animate.util.paths import expand_home

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """Where one model comes from. `kind` is hub | folder | file."""

    ref: str
    kind: str
    revision: str | None = None
    weight_name: str | None = None  # a file inside a hub repo or folder
    config: str | None = None  # config folder or hub id for single files without one
    role: str = "model"  # kit/registry hint: base | motion | lcm | motion-lora | lora | controlnet | unet
    allow_pickle: bool = False
    sha256: str | None = None  # a local file's (or folder's) digest, checked before loading (animate.models.weights)

    def key(self) -> tuple:
        """Identity used to share loaded models between clips."""
        return (self.kind, self.ref, self.revision, self.weight_name, self.config)

    def describe(self) -> str:
        text = self.ref
        if self.weight_name:
            text += f" ({self.weight_name})"
        if self.revision:
            text += f"@{self.revision}"
        return text

    def local_file(self) -> Path | None:
        """The single weights file on disk, when there is one without downloading."""
        if self.kind == "file":
            return Path(self.ref)
        if self.kind == "folder" and self.weight_name:
            return Path(self.ref) / self.weight_name
        return None


# Well-known names (facts/diffusers.md) → hub sources. `tiny-*` names point into the offline kit.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "epicrealism": {"ref": "emilianJR/epiCRealism", "role": "base"},
    "animatediff-v1-5-2": {"ref": "guoyww/animatediff-motion-adapter-v1-5-2", "role": "motion"},
    "animatediff-v1-5-3": {"ref": "guoyww/animatediff-motion-adapter-v1-5-3", "role": "motion"},
    "animatelcm": {"ref": "wangfuyun/AnimateLCM", "role": "motion"},
    "animatelcm-lora": {"ref": "wangfuyun/AnimateLCM", "weight_name": "AnimateLCM_sd15_t2v_lora.safetensors",
                        "role": "lcm"},
    "lcm-lora-sd15": {"ref": "latent-consistency/lcm-lora-sdv1-5", "weight_name": "pytorch_lora_weights.safetensors",
                      "role": "lcm"},
    "openpose": {"ref": "lllyasviel/control_v11p_sd15_openpose", "role": "controlnet"},
    "sparsectrl-rgb": {"ref": "guoyww/animatediff-sparsectrl-rgb", "role": "sparsectrl"},
}
for _steps in (1, 2, 4, 8):
    KNOWN_MODELS[f"lightning-{_steps}step"] = {
        "ref": "ByteDance/AnimateDiff-Lightning", "role": "motion",
        "weight_name": f"animatediff_lightning_{_steps}step_diffusers.safetensors",
    }
# SDXL family (facts/diffusers.md): base, its AnimateDiff motion adapter, LCM-LoRA-SDXL and SDXL-Lightning.
KNOWN_MODELS.update({
    "sdxl-base": {"ref": "stabilityai/stable-diffusion-xl-base-1.0", "role": "base"},
    "ssd-1b": {"ref": "segmind/SSD-1B", "role": "base"},
    "animatediff-sdxl-beta": {"ref": "guoyww/animatediff-motion-adapter-sdxl-beta", "role": "motion"},
    "lcm-lora-sdxl": {"ref": "latent-consistency/lcm-lora-sdxl", "weight_name": "pytorch_lora_weights.safetensors",
                      "role": "lcm"},
})
for _steps in (1, 2, 4, 8):
    KNOWN_MODELS[f"sdxl-lightning-{_steps}step-unet"] = {
        "ref": "ByteDance/SDXL-Lightning", "role": "unet",
        "weight_name": f"sdxl_lightning_{_steps}step_unet.safetensors"}
    if _steps > 1:  # ByteDance ships no 1-step LoRA
        KNOWN_MODELS[f"sdxl-lightning-{_steps}step-lora"] = {
            "ref": "ByteDance/SDXL-Lightning", "role": "lcm",
            "weight_name": f"sdxl_lightning_{_steps}step_lora.safetensors"}
for _motion in ("zoom-in", "zoom-out", "pan-left", "pan-right", "tilt-up", "tilt-down",
                "rolling-clockwise", "rolling-anticlockwise"):
    KNOWN_MODELS[_motion] = {"ref": f"guoyww/animatediff-motion-lora-{_motion}", "role": "motion-lora",
                             "weight_name": "diffusion_pytorch_model.safetensors"}

# The offline kit (animate.models.tiny): name → (path inside the kit, role, config path inside the kit).
TINY_MODELS: dict[str, tuple[str, str, str | None]] = {
    "tiny": ("base", "base", None),
    "tiny-file": ("base.safetensors", "base", "base"),
    "tiny-motion": ("motion-adapter", "motion", None),
    "tiny-motion-file": ("motion-module.safetensors", "motion", "motion-adapter"),
    "tiny-lightning": ("lightning-2step.safetensors", "motion", "motion-adapter"),
    "tiny-lcm": ("lcm-lora/pytorch_lora_weights.safetensors", "lcm", None),
    "tiny-zoom-in": ("motion-lora-zoom-in/diffusion_pytorch_model.safetensors", "motion-lora", None),
    "tiny-pan-left": ("motion-lora-pan-left/diffusion_pytorch_model.safetensors", "motion-lora", None),
    "tiny-openpose": ("controlnet-openpose", "controlnet", None),
    "tiny-openpose-file": ("controlnet-openpose.safetensors", "controlnet", "controlnet-openpose"),
    "tiny-sparsectrl": ("sparsectrl-rgb", "sparsectrl", None),
    "tiny-sparsectrl-file": ("sparsectrl-rgb.safetensors", "sparsectrl", "sparsectrl-rgb"),
    # SDXL-shaped parts (animate.models.tiny_xl), built on first use under <kit>/xl/.
    "tiny-xl": ("xl/base", "base", None),
    "tiny-xl-motion": ("xl/motion-adapter", "motion", None),
    "tiny-xl-lcm": ("xl/lcm-lora/pytorch_lora_weights.safetensors", "lcm", None),
    "tiny-xl-lightning-unet": ("xl/sdxl_lightning_2step_unet.safetensors", "unet", None),
}
# In a script `motion_adapter: tiny` means the kit's adapter, `controlnet: tiny` its ControlNet,
# `sparsectrl: tiny` its SparseCtrl model.
TINY_ALIASES = {"motion": "tiny-motion", "controlnet": "tiny-openpose", "sparsectrl": "tiny-sparsectrl"}


def known_names() -> list[str]:
    return sorted(KNOWN_MODELS) + sorted(TINY_MODELS)


def _tiny(name: str) -> Source:
    rel, role, config = TINY_MODELS[name]
    kit = ensure_kit()
    if rel.startswith("xl/"):
        ensure_xl(kit)
    path = kit / rel
    return Source(ref=str(path), kind="folder" if path.is_dir() else "file", role=role,
                  config=str(kit / config) if config else None)


def _looks_like_path(text: str) -> bool:
    return (text.startswith((".", "/", "~")) or "\\" in text or text.lower().endswith(WEIGHT_SUFFIXES)
            or text.count("/") > 1 or os.sep in text and not HUB_ID.match(text))


def resolve_source(value: Any, *, base_dir: str | os.PathLike = ".", field: str = "model",
                   slot: str | None = None, allow_pickle: bool = False) -> Source:
    """Turn a script value (a string, or a mapping with source/revision/weight_name/config) into a Source.

    `field` names the script field in error messages; `slot` picks the tiny-kit alias (motion, controlnet).
    """
    if isinstance(value, Source):
        return value
    opts: dict[str, Any] = {}
    if isinstance(value, dict):
        opts = {k: v for k, v in value.items() if k != "source"}
        value = value.get("source")
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"expected a hub id, a folder or a .safetensors file (got {value!r})", where=field)
    text = value.strip()
    base_dir = Path(base_dir)

    name = text.lower()
    if slot and name == "tiny" and slot in TINY_ALIASES:
        name = TINY_ALIASES[slot]
    if name in TINY_MODELS:
        src = _tiny(name)
    elif name in KNOWN_MODELS:
        src = Source(kind="hub", **KNOWN_MODELS[name])
    elif _looks_like_path(text) or expand_home(base_dir / text).exists():
        path = (base_dir / expand_home(text)).resolve()
        if not path.exists():
            raise ModelError(f"{text}: no such file or folder", where=field,
                             hint="check the path (relative paths resolve against the script's folder)")
        src = Source(ref=str(path), kind="folder" if path.is_dir() else "file")
    elif HUB_ID.match(text):
        src = Source(ref=text, kind="hub")
    else:
        raise ModelError(f"{text!r} is neither an existing path nor a hub id like owner/name", where=field,
                         hint=f"known names: {', '.join(known_names())}")

    allowed = {"revision", "weight_name", "config", "sha256"}
    unknown = set(opts) - allowed - {"allow_pickle"}
    if unknown:
        raise ModelError(f"unknown source option {sorted(unknown)[0]!r}", where=field,
                         hint=f"use {', '.join(sorted(allowed))}")
    if opts.get("config"):
        local = (base_dir / expand_home(str(opts["config"])))
        if local.exists() or not HUB_ID.match(str(opts["config"])):  # a folder beside the script wins
            opts["config"] = str(local.resolve())
    if opts.get("sha256") is not None:
        opts["sha256"] = _pin(opts["sha256"], src, field)
    src = replace(src, allow_pickle=allow_pickle or bool(opts.pop("allow_pickle", False)),
                  **{k: v for k, v in opts.items() if v is not None})
    check_safe(src, field)
    if src.kind == "folder" and src.weight_name and not (Path(src.ref) / src.weight_name).exists():
        raise ModelError(f"{src.weight_name} not found in {src.ref}", where=field)
    return src


def _pin(value: Any, src: Source, field: str) -> str:
    """A `sha256:` pin as 64 lowercase hex digits; hub sources are pinned by `revision:` instead."""
    text = str(value).strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ModelError(f"sha256 must be 64 hex digits (got {str(value)[:80]!r})", where=f"{field}.sha256",
                         hint="use the output of `sha256sum FILE`")
    if src.kind == "hub":
        raise ModelError(f"sha256 pins a local file or folder, but {src.ref} is a hub id", where=f"{field}.sha256",
                         hint="pin a hub source with revision: COMMIT (the sidecar records the commit it used)")
    return text


def check_safe(src: Source, field: str) -> None:
    """Refuse pickle checkpoints unless the user opted in: loading them can run arbitrary code."""
    name = (src.weight_name or (src.ref if src.kind == "file" else "")).lower()
    if name.endswith(PICKLE_SUFFIXES) and not src.allow_pickle:
        raise ModelError(f"{src.describe()} is a pickle checkpoint, which can run code when loaded", where=field,
                         hint="convert it to .safetensors, or set allow_pickle: true if you trust it")


def hub_offline() -> bool:
    from huggingface_hub import constants  # hub client: slow to import, loaded on use

    return bool(constants.HF_HUB_OFFLINE)


def is_cached(src: Source) -> bool:
    """Whether a hub source is already in the local hub cache (never downloads)."""
    if src.kind != "hub":
        return True
    from huggingface_hub import try_to_load_from_cache  # hub client: slow to import, loaded on use

    try:
        if src.weight_name:
            return isinstance(try_to_load_from_cache(src.ref, src.weight_name, revision=src.revision), str)
        return src.ref in _cached_repos()
    except Exception:  # no cache folder yet, or an unreadable one
        return False


@functools.lru_cache(maxsize=1)
def _cached_repos() -> frozenset:
    # Scanning the hub cache walks every file: once per process is enough for a plan.
    from huggingface_hub import scan_cache_dir

    return frozenset(repo.repo_id for repo in scan_cache_dir().repos)


PROBE_TIMEOUT_S = 3.0


def hub_unreachable() -> str | None:
    """Why the hub endpoint (HF_ENDPOINT) can't be reached, or None when it answers."""
    from huggingface_hub import constants  # hub client: slow to import, loaded on use

    return _probe(constants.ENDPOINT)


@functools.cache
def _probe(endpoint: str) -> str | None:
    # One short request per endpoint and process, through the hub client's own session (its proxies and
    # certificates): without it every look-up retries for ~25 s before giving up on a machine with no network.
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001  the client's transport errors: refused, no DNS, timeout, proxy
        return _short_reason(exc)
    return None  # any answer, even an error status, means the hub is there


def _short_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def in_local_cache(src: Source) -> bool:
    """Whether a hub source can be had from the local hub cache alone (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache  # hub client: slow to import, loaded on use
    from huggingface_hub.errors import LocalEntryNotFoundError  # hub client: slow to import, loaded on use

    try:
        if src.weight_name:
            return isinstance(try_to_load_from_cache(src.ref, src.weight_name, revision=src.revision), str)
        from huggingface_hub import snapshot_download  # hub client: slow to import, loaded on use

        snapshot_download(src.ref, revision=src.revision, local_files_only=True)
        return True
    except (LocalEntryNotFoundError, OSError, ValueError):
        return False


def check_reachable(src: Source, field: str) -> None:
    """Fail early, with one line, when a hub id can't be had: not in the local cache, and the hub is offline
    (HF_HUB_OFFLINE=1) or does not answer one short probe. Where the hub answers, the render downloads it."""
    if src.kind != "hub" or in_local_cache(src):
        return
    from huggingface_hub import constants  # hub client: slow to import, loaded on use

    if hub_offline():
        why = "the hub is offline (HF_HUB_OFFLINE=1)"
    else:
        reason = hub_unreachable()
        if reason is None:
            return
        why = f"the hub at {constants.ENDPOINT} cannot be reached ({reason})"
    raise ModelError(f"hub id {src.describe()} is not in the local cache and {why}", where=field,
                     hint="download it once with network, or point to a local folder or .safetensors file")


def hub_snapshot(src: Source) -> Path | None:
    """The local hub cache folder of a hub source's revision (<cache>/models--o--n/snapshots/<commit>), or None
    when it is not cached. Never touches the network."""
    if src.kind != "hub":
        return None
    from huggingface_hub import snapshot_download, try_to_load_from_cache  # hub client: slow to import, loaded on use

    try:
        if src.weight_name:
            found = try_to_load_from_cache(src.ref, src.weight_name, revision=src.revision)
            path = Path(found) if isinstance(found, str) else None
        else:
            path = Path(snapshot_download(src.ref, revision=src.revision, local_files_only=True))
    except Exception:  # noqa: BLE001  not cached (the hub client's own error types), or no cache at all
        return None
    while path is not None and path.parent.name != "snapshots":
        path = path.parent if path != path.parent else None
    return path


def hub_commit(src: Source) -> str | None:
    """The commit a hub source resolves to in the local hub cache (what `revision:` pins), or None."""
    snapshot = hub_snapshot(src)
    return snapshot.name if snapshot is not None else None


def cached_hub_file(repo: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache  # hub client: slow to import, loaded on use

    try:
        found = try_to_load_from_cache(repo, filename, revision=revision)
    except (OSError, ValueError):  # no cache folder yet, an unreadable one, a malformed repo id
        return None
    return found if isinstance(found, str) else None
