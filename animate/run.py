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
    """The resolved spec as it is hashed and embedded (no timings, no host-specific paths beyond sources)."""
    from .outputs import spec_hash

    data = spec.to_dict()
    data.pop("script", None)
    return {"spec": data, "spec_hash": spec_hash(data)}


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
    progress.event("plan", clips=len(specs), to_render=len(todo), skipped=len(summary.skipped),
                   out=str(layout.root))
    for stem in summary.skipped:
        progress.event("clip_skipped", clip=stem)

    if todo:
        from .renderer import preflight

        preflight([spec for spec, _, _ in todo])
    if todo and renderer is None:
        from .renderer import Renderer

        renderer = Renderer(device=device, dtype=dtype)
    if renderer is not None:
        renderer.on_step = lambda spec, step, total: progress.event("step", clip=spec.stem, step=step, total=total)
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

    pose_frames = load_pose_frames(spec) if spec.pose else None
    result = renderer.render(spec, pose_frames=pose_frames)
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


POSE_OPTIONS = ("source_fps", "overrun", "canvas", "threshold", "smooth")


def load_pose_frames(spec: ClipSpec) -> list:
    """The pose conditioning images for a clip (cached by the pose layer)."""
    from PIL import Image

    from motion.errors import PoseSourceError
    from motion.pose import pose_frames

    from .errors import PoseError
    from .tiny import cache_root

    pose = spec.pose
    try:
        options = {k: pose[k] for k in POSE_OPTIONS if pose.get(k) is not None}
        frames = pose_frames(pose["source"], frames=spec.frames, fps=spec.fps, width=spec.width, height=spec.height,
                             fit=pose.get("fit", "contain"), kind=pose.get("kind"), cache_dir=cache_root() / "poses",
                             **options)
    except PoseSourceError as exc:
        raise PoseError(str(exc), where=f"{spec.script}: clip {spec.name}: pose.source") from None
    return [Image.fromarray(f) for f in frames]


REEL_STEM = "reel"


def write_script_reel(layout, specs: list[ClipSpec], options: dict, base_dir: str | Path, rebuild: bool) -> Path:
    """One MP4 of every clip in script order, read back from each clip's best output."""
    from .encode.inputs import read_frames
    from .encode.reel import write_reel
    from .errors import ConfigError

    path = layout.file(REEL_STEM, "mp4")
    if any(spec.stem == REEL_STEM for spec in specs):
        raise ConfigError("a clip named `reel` would collide with the script's reel output", where="reel",
                          hint="rename the clip")
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
