"""Running a list of ClipSpecs: skip what is done, render, encode every output atomically, then write the
sidecar, the manifest line and the gallery. Ctrl-C keeps finished clips."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AnimateError, Interrupted
from .progress import Progress
from .script import ClipSpec


@dataclass
class RunSummary:
    out: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.interrupted else 0


def output_paths(layout, spec: ClipSpec) -> dict[str, Path]:
    """Format → the path it writes (a folder for frame sequences)."""
    from .encode import extension

    paths = {}
    for fmt in spec.outputs:
        ext, folder = extension(fmt)
        paths[fmt] = layout.folder(spec.stem) if folder else layout.file(spec.stem, ext.lstrip("."))
    return paths


def spec_record(spec: ClipSpec) -> dict:
    """The resolved spec as it is embedded, and its hash; the hash also covers the identity (size, mtime)
    of local model files, so replacing a LoRA file in place re-renders the clips that use it."""
    from .outputs import spec_hash

    data = spec.to_dict()
    data.pop("script", None)
    sources = [spec.model, spec.motion_adapter] + [src for _, src, _, _ in spec.adapters]
    if spec.pose:
        sources.append(spec.pose["controlnet"])
    fingerprints = {src.describe(): fingerprint(src) for src in sources if src.kind != "hub"}
    return {"spec": data, "spec_hash": spec_hash({**data, "fingerprints": fingerprints})}


def fingerprint(src) -> str:
    """Size and modification time of a local model file, or of every file in a model folder."""
    path = src.local_file() or Path(src.ref)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return ";".join(f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                    for p in files)


def model_record(spec: ClipSpec) -> dict:
    """Model sources with revisions or file hashes, for the sidecar."""
    from .outputs import file_sha256

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

    models = {"model": one(spec.model), "motion_adapter": one(spec.motion_adapter)}
    for name, src, weight, kind in spec.adapters:
        models[f"adapter:{name}"] = {**one(src), "weight": weight, "kind": kind}
    if spec.pose:
        models["controlnet"] = one(spec.pose["controlnet"])
    return models


def run_specs(specs: list[ClipSpec], *, out: str | Path, script_stem: str, renderer=None, force: bool = False,
              progress: Progress | None = None, device: str | None = None, dtype: str | None = None,
              reel: dict | None = None, base_dir: str | Path = ".") -> RunSummary:
    """Render every spec not already done; return what happened."""
    from .gallery import write_gallery
    from .outputs import Manifest, OutputLayout

    progress = progress or Progress(quiet=True)
    from .atomic import sweep_partials

    layout = OutputLayout(out, script_stem)
    sweep_partials(layout.root)  # temp files of an interrupted run; the folder itself appears on first write
    manifest = Manifest(layout.manifest)
    summary = RunSummary(out=layout.root)
    todo = []
    for spec in specs:
        record = spec_record(spec)
        paths = output_paths(layout, spec)
        if not force and manifest.is_done(spec.stem, record["spec_hash"], list(paths.values())):
            summary.skipped.append(spec.stem)
        else:
            todo.append((spec, record, paths))
    if reel is not None and any(spec.stem == REEL_STEM for spec in specs):
        from .errors import ConfigError

        raise ConfigError("a clip named `reel` would collide with the script's reel output", where="reel",
                          hint="rename the clip")
    if todo:
        from .renderer import preflight

        preflight([spec for spec, _, _ in todo])
        # Render clips that share a model stack together, so each stack is loaded once (stable order).
        first_seen: dict = {}
        for spec, _, _ in todo:
            first_seen.setdefault((spec.model.key(), spec.motion_adapter.key()), len(first_seen))
        todo.sort(key=lambda item: first_seen[(item[0].model.key(), item[0].motion_adapter.key())])
    if todo and renderer is None:
        from .renderer import Renderer

        renderer = Renderer(device=device, dtype=dtype, quiet_loading=True)
    if renderer is not None:
        renderer.on_step = lambda spec, step, total: progress.event("step", clip=spec.stem, step=step, total=total)
    # Announce the plan only once every check has passed (a bad device or option stops before it).
    progress.event("plan", clips=len(specs), to_render=len(todo), skipped=len(summary.skipped),
                   out=str(layout.root))
    for stem in summary.skipped:
        progress.event("clip_skipped", clip=stem)

    try:
        for spec, record, paths in todo:
            progress.event("clip_start", clip=spec.stem, seed=spec.seed, frames=spec.frames, steps=spec.steps)
            try:
                written = render_one(renderer, spec, record, paths, layout)
            except AnimateError as exc:
                if exc.exit_code == 2:  # a user mistake repeats for every clip: stop with one line
                    if spec.name not in (exc.where or ""):
                        exc = type(exc)(exc.message, where=f"{spec.script or 'command line'}: clip {spec.name}"
                                        + (f": {exc.where}" if exc.where else ""), hint=exc.hint)
                    if progress.json:
                        progress.event("error", clip=spec.stem, message=exc.line(), fatal=True)
                        progress.event("summary", done=len(summary.done), skipped=len(summary.skipped),
                                       failed=len(summary.failed) + 1, interrupted=False, out=str(layout.root))
                    raise exc from None
                summary.failed.append((spec.stem, exc.line()))
                progress.event("error", clip=spec.stem, message=exc.line())
                continue
            manifest.record(spec.stem, record["spec_hash"], [str(p) for p in written])
            summary.done.append(spec.stem)
            progress.event("clip_done", clip=spec.stem, outputs=[layout.relative(p) for p in written])
    except KeyboardInterrupt:
        summary.interrupted = True
        progress.event("error", message="interrupted; finished clips are kept")
    finally:
        progress.close()
        _gallery(layout, specs, manifest, write_gallery)
    if reel is not None and not summary.interrupted and not summary.failed:
        path = write_script_reel(layout, specs, reel, base_dir, rebuild=bool(summary.done))
        progress.event("reel", path=str(path))
    progress.event("summary", done=len(summary.done), skipped=len(summary.skipped), failed=len(summary.failed),
                   interrupted=summary.interrupted, out=str(layout.root))
    if summary.interrupted:
        raise Interrupted(f"interrupted: {len(summary.done)} clips finished and kept in {layout.root}")
    return summary


def render_one(renderer, spec: ClipSpec, record: dict, paths: dict[str, Path], layout) -> list[Path]:
    """Render one spec and write its outputs and sidecar; return the paths written (sidecar last)."""
    from .encode import encode_with_report
    from .outputs import build_sidecar, write_sidecar

    result = renderer.render(spec)
    metadata = json.dumps(record["spec"], separators=(",", ":"), sort_keys=True, default=str)
    written, reports = [], {}
    t0 = time.perf_counter()
    for fmt, path in paths.items():
        options = dict(spec.outputs.get(fmt) or {})
        out_path, report = encode_with_report(fmt, result.frames, path, fps=spec.fps, metadata=metadata, **options)
        written.append(Path(out_path))
        reports[fmt] = report
    timings = {**result.timings, "encode_s": round(time.perf_counter() - t0, 3)}
    sidecar = build_sidecar(record["spec"], models=model_record(spec), device=result.info.get("device", ""),
                            timings=timings, info=result.info,
                            outputs={fmt: layout.relative(p) for fmt, p in zip(paths, written)},
                            encoders=reports)
    written.append(write_sidecar(layout.sidecar(spec.stem), sidecar))
    return written


REEL_STEM = "reel"


def write_script_reel(layout, specs: list[ClipSpec], options: dict, base_dir: str | Path, rebuild: bool) -> Path:
    """One MP4 of every clip in script order, read back from each clip's best output."""
    from .encode.inputs import read_frames
    from .encode.reel import write_reel

    path = layout.file(REEL_STEM, "mp4")
    if path.exists() and not rebuild:
        return path
    clips = [read_frames(layout.sidecar(spec.stem)) for spec in specs]
    audio = options.get("audio")
    if audio:
        audio = str((Path(base_dir) / audio).resolve())
    return write_reel(clips, path, fps=options.get("fps"), audio=audio, crossfade=options.get("crossfade") or 0.0)


def _gallery(layout, specs: list[ClipSpec], manifest, write_gallery) -> None:
    from motion.loras import weight_label

    entries = []
    done = manifest.entries()
    for spec in specs:
        entry = done.get(spec.stem)
        if not entry:
            continue
        files = [f["path"] for f in entry.get("files", [])]
        outputs = [f for f in files if not f.endswith(".json")]
        entries.append({
            "name": spec.stem, "seed": spec.seed, "prompt": spec.prompt,
            "params": {"steps": spec.steps, "guidance": spec.guidance, "scheduler": spec.scheduler,
                       "frames": spec.frames, "fps": spec.fps, "size": f"{spec.width}x{spec.height}",
                       "adapters": ", ".join(f"{n}:{weight_label(w)}" for n, _, w, _ in spec.adapters) or "none"},
            "preview": None, "outputs": outputs, "sidecar": f"{spec.stem}.json",
        })
    if entries or layout.gallery.exists():
        write_gallery(layout, entries, title=layout.script_stem)
