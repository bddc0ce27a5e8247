"""Past clips from the manifests under the output root (what the gallery shows), and the script that makes a
recorded clip again from its sidecar."""
from __future__ import annotations

import re
from pathlib import Path

from animate.outputs.layout import MANIFEST_NAME, Manifest
from animate.outputs.records import read_sidecar
from animate.outputs.layout import PREVIEW_DIR
from animate.models.sources import TINY_MODELS

# ClipSpec fields a script does not take (derived, or the script's own path).
NOT_SCRIPT_FIELDS = ("multi_seed", "script", "extra", "preset")
SOURCE_FIELDS = ("model", "motion_adapter", "unet")  # fields holding one model source
KIT_PATH = r"[/\\]tiny-v\d+[/\\](.+)$"  # a path inside the offline kit (machine-specific)


def history(out: Path, limit: int = 200) -> list[dict]:
    """Every finished clip of every script folder under `out`, newest first; paths relative to `out`."""
    entries = []
    for manifest_path in sorted(out.glob(f"*/{MANIFEST_NAME}")):
        folder = manifest_path.parent
        if folder.name.startswith("."):
            continue
        for stem, entry in Manifest(manifest_path).entries().items():
            sidecar = read_sidecar(folder / f"{stem}.json")
            spec = sidecar.get("spec") or {}
            if not spec:
                continue  # the reel, or a torn record
            outputs = [rec["path"] for rec in (entry.get("outputs") or {}).values() if isinstance(rec, dict)]
            preview = folder / PREVIEW_DIR / f"{stem}.webp"
            entries.append({
                "script": folder.name, "stem": stem, "name": spec.get("name", stem), "seed": spec.get("seed"),
                "prompt": spec.get("prompt"), "time": entry.get("time"), "render_key": entry.get("render_key"),
                "outputs": [f"{folder.name}/{p}" for p in outputs], "sidecar": f"{folder.name}/{stem}.json",
                "preview": f"{folder.name}/{PREVIEW_DIR}/{stem}.webp" if preview.is_file() else None,
                "frames": spec.get("frames"), "fps": spec.get("fps"), "width": spec.get("width"),
                "height": spec.get("height"), "steps": spec.get("steps"),
                "adapters": [{"name": a.get("name"), "weight": a.get("weight")} for a in spec.get("adapters") or []],
            })
    entries.sort(key=lambda e: str(e["time"] or ""), reverse=True)
    return entries[:limit]


def script_for(spec: dict) -> dict:
    """A one-clip script (data) that renders the recorded `spec` again with the same render key."""
    clip = {"name": spec["name"]}
    for key, value in spec.items():
        if key in NOT_SCRIPT_FIELDS or key == "name" or value is None or key == "negative" and value == "":
            continue  # (an empty negative is no negative: a script leaves it out)
        if key in SOURCE_FIELDS:
            value = script_source(value)
        elif key == "adapters":
            value = [{"name": a["name"], "source": script_source(a["source"]), "weight": a["weight"],
                      **({"kind": a["kind"]} if a.get("kind") else {})} for a in value]
        elif key == "pose":
            value = {k: (script_source(v) if k == "controlnet" else v) for k, v in value.items() if v is not None}
        elif key == "keyframes":  # the SparseCtrl model rides in the record; a script names it beside them
            clip["sparsectrl"] = script_source(value.get("sparsectrl"))
            value = {k: v for k, v in value.items() if k != "sparsectrl" and v is not None}
        elif isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
            if key == "context":  # a record leaves out the motion modules' blend; unset, long clips blend in the UNet
                value.setdefault("blend", "motion")
        clip[key] = value
    return {"version": 1, "clips": [clip]}


def script_source(src: dict | str | None):
    """A recorded source as a script writes it: a `tiny*` name for the offline kit, else its ref; with its
    options (revision, weight_name, config, sha256, allow_pickle) where it has any."""
    if not isinstance(src, dict):
        return src

    ref, config = str(src.get("ref", "")), src.get("config")
    options = {k: src[k] for k in ("revision", "weight_name", "config", "sha256") if src.get(k)}
    if src.get("allow_pickle"):
        options["allow_pickle"] = True
    kit = re.search(KIT_PATH, ref)
    if kit:
        inner = kit.group(1).replace("\\", "/")
        kit_config = re.search(KIT_PATH, str(config)) if config else None
        config = kit_config.group(1).replace("\\", "/") if kit_config else config  # another config: no kit name
        for name, (rel, _, rel_config) in TINY_MODELS.items():
            if rel == inner and (rel_config or None) == config:
                ref = name  # the kit's name gives its config
                options.pop("config", None)
                break
    return {"source": ref, **options} if options else ref
