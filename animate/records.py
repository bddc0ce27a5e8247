"""Records: the one writer of what a run leaves behind besides the outputs themselves — the clip's sidecar, its
manifest line and the script's gallery. Called only after every output of a clip is renamed into place."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .framestore import FrameStore
from .outputs import Manifest, OutputLayout, build_sidecar, file_sha256, measure, write_sidecar
from .spec.clipspec import labeled_sources

PREVIEW_DIR = ".previews"
PREVIEW_MAX_SIDE = 320


def model_record(spec) -> dict:
    """Model sources with revisions or file hashes, for the sidecar."""

    def one(src):
        rec = {"source": src.ref, "kind": src.kind}
        if src.revision:
            rec["revision"] = src.revision
        if src.weight_name:
            rec["weight_name"] = src.weight_name
        local = src.local_file()
        if local is not None and local.is_file():
            rec["sha256"] = file_sha256(local)
        return rec

    mixed = {name: {"weight": weight, "kind": kind} for name, _, weight, kind in spec.adapters}
    # Every source the clip loads (a full UNet, a ControlNet, SparseCtrl ...), as the spec lists them.
    return {f"adapter:{name}" if name else field: {**one(src), **mixed.get(name, {})}
            for field, name, src in labeled_sources(spec)}


def read_sidecar(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def preview_path(layout: OutputLayout, stem: str) -> Path:
    return layout.root / PREVIEW_DIR / f"{layout.sidecar(stem).stem}.webp"


def write_preview(frames, dest: Path, fps: float) -> Path:
    """A small looping WebP of the lossless frames for the gallery (any output may be letterboxed or fitted)."""
    from .encode import encode_with_report
    from .encode.base import fit_inside, resize_frames

    _, h, w, _ = frames.shape
    width, height = fit_inside(w, h, PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
    return encode_with_report("webp", resize_frames(frames, width, height), dest, fps=fps, quality=80)[0]


class Records:
    """Sidecars, manifest lines and the gallery of one script's output folder."""

    def __init__(self, layout: OutputLayout, store: FrameStore):
        self.layout = layout
        self.store = store
        self.manifest = Manifest(layout.manifest)

    def finish(self, job, written: dict[str, tuple[Path, dict]], *, timings: dict, info: dict) -> list[Path]:
        """Write the sidecar and then the manifest line of a clip whose outputs are all in place; return the
        clip's output paths (sidecar last)."""
        layout = self.layout
        previous = read_sidecar(layout.sidecar(job.stem))
        outputs = dict(job.kept)
        reports = {fmt: rep for fmt, rep in (previous.get("encoders") or {}).items() if fmt in job.kept}
        for fmt, (path, report) in written.items():
            outputs[fmt] = {"path": layout.relative(path), "size": measure(path), "output_key": job.output_keys[fmt]}
            reports[fmt] = report
        outputs = {fmt: outputs[fmt] for fmt in job.paths if fmt in outputs}  # the spec's order
        if not timings and previous.get("timings"):
            timings = previous["timings"]  # frames came from the store: keep how long they took to make
        frames = self.store.path(job.render_key)
        sidecar = build_sidecar(job.record, spec_hash=job.spec_hash, models=model_record(job.spec),
                                device=info.get("device", previous.get("device", "")), timings=timings,
                                info=info or previous.get("info", {}), render_key=job.render_key,
                                frames=os.path.relpath(frames, layout.root) if frames.exists() else None,
                                outputs={fmt: rec["path"] for fmt, rec in outputs.items()}, encoders=reports)
        sidecar_path = write_sidecar(layout.sidecar(job.stem), sidecar)
        files = [layout.resolved_root / rec["path"] for rec in outputs.values()] + [Path(sidecar_path).resolve()]
        self.manifest.record(job.stem, job.spec_hash, files, render_key=job.render_key, outputs=outputs)
        return files

    def write_gallery(self) -> Path | None:
        """The gallery of every clip the manifest holds (not only this run's), previews from the frame store."""
        from motion.loras import weight_label

        from .gallery import write_gallery

        layout = self.layout
        entries = []
        for stem, entry in self.manifest.entries().items():
            sidecar_path = layout.root / f"{stem}.json"
            sidecar = read_sidecar(sidecar_path)
            spec = sidecar.get("spec") or {}
            if not spec or not sidecar_path.is_file():
                continue
            outputs = [rec["path"] for rec in (entry.get("outputs") or {}).values() if isinstance(rec, dict)] or \
                [f["path"] for f in entry.get("files", []) if not str(f.get("path", "")).endswith(".json")]
            preview = preview_path(layout, stem)
            adapters = spec.get("adapters") or []
            entries.append({
                "name": spec.get("name", stem), "seed": spec.get("seed"), "prompt": spec.get("prompt"),
                "params": {"steps": spec.get("steps"), "guidance": spec.get("guidance"),
                           "scheduler": spec.get("scheduler"), "frames": spec.get("frames"), "fps": spec.get("fps"),
                           "size": f"{spec.get('width')}x{spec.get('height')}",
                           "adapters": ", ".join(f"{a['name']}:{weight_label(a['weight'])}"
                                                 for a in adapters) or "none"},
                "preview": preview.relative_to(layout.root).as_posix() if preview.is_file() else None,
                "outputs": outputs, "sidecar": sidecar_path.name,
                "width": spec.get("width"), "height": spec.get("height"),
            })
        if entries or layout.gallery.exists():
            return write_gallery(layout, entries, title=layout.script_stem)
        return None
