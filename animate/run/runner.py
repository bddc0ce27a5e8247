"""The streaming runner: jobs flow through claim → render (or read back from the frame store) → encoder pool →
records. Clip N encodes on worker threads while clip N+1 denoises; at most `max_pending` clips' frames wait for
their encoders. A clip's failure never loses another clip's outputs; Ctrl-C and SIGTERM keep finished clips."""
from __future__ import annotations

import errno
import hashlib
import json
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from animate.outputs.claims import Claim, Claims
from animate.errors import AnimateError, Interrupted, RenderError, WriteError
from animate.events import ClipDone, ClipStart, EncodeDone, Events, Plan, Step, Summary, error_events, plural
from animate.outputs.framestore import FrameStore
from animate.run.jobs import Job, plan_job
from animate.outputs.layout import Manifest, OutputLayout, canonical_json
from animate.outputs.records import Records, preview_path, write_preview
from animate.encode import encode_with_report
from animate.encode.reel import write_reel
from animate.outputs.readback import read_frames
from animate.rendering.renderer import Renderer
from animate.rendering.device import dtype_name, pick_device, pick_dtype
from animate.run.preflight import REEL_STEM, preflight
from animate.run.plan import build_plan
from animate.util.atomic import sweep_partials
from animate.util.hashing import content_hash

POLL_S = 0.5  # how often a process waiting on another's claim looks again
MACHINE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                  errno.EIO: "the disk reported an input/output error"}  # (a failing disk or share repeats)


@dataclass
class RunSummary:
    out: Path
    rendered: list[str] = field(default_factory=list)  # denoised in this run
    done: list[str] = field(default_factory=list)  # finished in this run (rendered, re-encoded or re-recorded)
    skipped: list[str] = field(default_factory=list)  # already up to date
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.interrupted else 0


def compute_target(device: str | None, dtype: str | None) -> tuple[str, str]:
    """(device, dtype label) a Renderer with these arguments would use: render keys need the dtype up front."""

    dev = pick_device(device)
    return dev, dtype_name(pick_dtype(dev, dtype))


def machine_fault(exc: BaseException, path: Path | None = None) -> WriteError | None:
    """A full disk, a read-only folder or a refused write anywhere in `exc`'s chain, as one line."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in MACHINE_ERRNOS:
            where = seen.filename or path
            return WriteError(f"cannot write {where}: {MACHINE_ERRNOS[seen.errno]}",
                              hint="free some space or choose another --out; finished clips are kept")
        if "No space left on device" in str(seen):  # ffmpeg reports it on stderr
            return WriteError(f"cannot write {path}: the disk is full",
                              hint="free some space or choose another --out; finished clips are kept")
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass
class _Pending:
    job: Job
    claim: Claim | None
    futures: dict[str, Future]
    timings: dict
    info: dict
    worker: str | None = None  # the backend worker that rendered it (None: this process)


class Runner:
    """Claims, renders, encodes and records a list of jobs, encoding while the next job denoises.

    Where frames come from is the one part another backend replaces (animate.run.ray_backend.RayRunner): it
    overrides `run` with its own dispatch loop and uses the same steps the local loop uses: `take` (claim a job, or
    learn it is done elsewhere), `stored_frames` (frames already in the store), `deliver` (hand frames to the
    encoders and records), `render_failed`, `collect` (finished encodes) and `interrupted`."""

    def __init__(self, *, layout: OutputLayout, records: Records, store: FrameStore, claims: Claims, events: Events,
                 summary: RunSummary, make_renderer, dtype: str, force: bool, keep_frames: bool, max_pending: int,
                 workers: int):
        self.layout, self.records, self.store, self.claims = layout, records, store, claims
        self.events, self.summary = events, summary
        self.make_renderer, self.renderer = make_renderer, None
        self.dtype, self.force, self.keep_frames = dtype, force, keep_frames
        self.max_pending = max(1, max_pending)
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="encode")
        self.pending: list[_Pending] = []
        self.fatal: AnimateError | None = None

    # ------------------------------------------------------------------ the loop
    def run(self, jobs: list[Job]) -> None:
        queue, waiting = deque(jobs), []
        try:
            while (queue or waiting) and self.fatal is None:
                if not queue:  # every job left is held by another process: wait for it, or for its death
                    if self.pending:
                        self.collect(block=True)
                    else:
                        time.sleep(POLL_S)
                    queue.extend(waiting)
                    waiting.clear()
                    continue
                taken = self.take(queue.popleft(), waiting)
                if taken is None:
                    continue
                claim, fresh = taken
                try:
                    self._start(fresh, claim)
                except BaseException:  # Ctrl-C mid-render: a claim kept would be beaten alive by this process
                    if not any(p.claim is claim for p in self.pending):
                        claim.release()
                    raise
                self.collect(block=False)
                while len(self.pending) >= self.max_pending:
                    self.collect(block=True)
            while self.pending:
                self.collect(block=True)
        except KeyboardInterrupt:
            self.interrupted()
        finally:
            self.pool.shutdown(wait=True)
            for p in self.pending:  # only when something escaped: give the claims back, keep nothing half-done
                if p.claim is not None:
                    p.claim.release()

    def interrupted(self) -> None:
        """After Ctrl-C: clips already rendered still get their outputs (seconds, against minutes of denoising);
        a second Ctrl-C stops now, and queued encoders never start."""
        self.summary.interrupted = True
        try:
            while self.pending:
                self.collect(block=True)
        except KeyboardInterrupt:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.collect(block=False)
            for p in self.pending:
                if p.claim is not None:
                    p.claim.release()
            self.pending.clear()

    def take(self, job: Job, waiting: list) -> tuple[Claim, Job] | None:
        """Claim `job` and plan it again (another process may have finished it meanwhile): (claim, fresh job),
        or None when it is done now (reported as up to date), held by a live owner (put in `waiting`), or the
        claim could not be written (a full disk: the run's fatal error, finished clips still recorded)."""
        try:
            claim = self.claims.try_claim(job.render_key)
        except OSError as exc:
            self.fatal = machine_fault(exc, self.claims.path(job.render_key))
            if self.fatal is None:
                raise
            return None
        try:
            fresh = self._replan(job)
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        if fresh.status == "done" and not self.force:
            if claim is not None:
                claim.release()
            self._skipped(fresh)
            return None
        if claim is None:
            waiting.append(job)
            return None
        return claim, fresh

    def _replan(self, job: Job) -> Job:
        return plan_job(job.spec, self.layout, self.records.manifest, self.store, dtype=self.dtype, force=self.force)

    def _skipped(self, job: Job) -> None:
        self.summary.skipped.append(job.stem)
        self.events.emit(ClipDone(clip=job.stem, outputs=[rec["path"] for rec in job.kept.values()], encoded=[],
                                  skipped=True))

    # ------------------------------------------------------------------ one job
    def _start(self, job: Job, claim: Claim) -> None:
        frames, render_now = self.stored_frames(job)
        spec = job.spec
        self.events.emit(ClipStart(clip=job.stem, seed=spec.seed, frames=spec.frames, steps=spec.steps,
                                   render_key=job.render_key, source="render" if render_now else "store"))
        if not render_now:
            self.deliver(job, claim, frames)
            return
        try:
            result = self._renderer().render(spec)
        except Exception as exc:  # noqa: BLE001 - one clip's failure must not lose the others' outputs
            self.render_failed(job, claim, exc)
            return
        self.deliver(job, claim, result.frames, result.timings, result.info, rendered=True)

    def stored_frames(self, job: Job):
        """(the job's frames read back from the frame store or None, whether it must render)."""
        needs_frames = bool(job.encode) or not preview_path(self.layout, job.stem).is_file()
        frames = self.store.load(job.render_key) if needs_frames and not self.force else None
        return frames, bool(job.encode) and frames is None

    def render_failed(self, job: Job, claim: Claim | None, exc: BaseException, worker: str | None = None) -> None:
        if claim is not None:
            claim.release()
        self._failed(job, exc if isinstance(exc, AnimateError) else
                     RenderError(f"clip {job.stem} failed while rendering: {type(exc).__name__}: {one_line(exc)}"),
                     worker)

    def deliver(self, job: Job, claim: Claim | None, frames, timings: dict | None = None, info: dict | None = None,
                 *, rendered: bool = False, worker: str | None = None) -> None:
        """Hand a clip's frames (rendered here, by a backend's worker, or read back from the store) to the encoder
        pool: the frame store, every output to write and the gallery preview; `_collect` records it when done."""
        spec = job.spec
        preview = preview_path(self.layout, job.stem)
        futures: dict[str, Future] = {}
        if rendered:
            self.summary.rendered.append(job.stem)
            if self.keep_frames:
                meta = {"render_key": job.render_key, "clip": job.stem, "fps": spec.fps}
                futures["frames"] = self.pool.submit(self.store.save, job.render_key, frames, meta)
        metadata = json.dumps(job.record, separators=(",", ":"), sort_keys=True, default=str)
        for fmt in job.encode:
            futures[fmt] = self.pool.submit(self._encode, job, fmt, frames, metadata)
        if frames is not None and (job.encode or not preview.is_file()):
            futures["preview"] = self.pool.submit(write_preview, frames, preview, spec.fps)
        self.pending.append(_Pending(job, claim, futures, timings or {}, info or {}, worker))

    def _renderer(self):
        if self.renderer is None:
            self.renderer = self.make_renderer()
            self.renderer.on_step = lambda spec, step, total: self.events.emit(
                Step(clip=spec.stem, step=step, total=total))
        return self.renderer

    def _encode(self, job: Job, fmt: str, frames, metadata: str):
        t0 = time.perf_counter()
        options = dict(job.spec.outputs.get(fmt) or {})
        path, report = encode_with_report(fmt, frames, job.paths[fmt], fps=job.spec.fps, metadata=metadata, **options)
        report["seconds"] = round(time.perf_counter() - t0, 3)
        self.events.emit(EncodeDone(clip=job.stem, format=fmt, path=self.layout.relative(path),
                                    bytes=int(report.get("bytes", 0)), seconds=report["seconds"]))
        return Path(path), report

    def collect(self, block: bool) -> None:
        """Write the records of every clip whose encoders are done (waiting for one first when `block`)."""
        if block:
            running = [f for p in self.pending for f in p.futures.values() if not f.done()]
            if running:
                wait(running, return_when=FIRST_COMPLETED)
        for p in [p for p in self.pending if all(f.done() for f in p.futures.values())]:
            self.pending.remove(p)
            try:
                self._finish(p)
            finally:
                if p.claim is not None:
                    p.claim.release()

    def _finish(self, p: _Pending) -> None:
        job = p.job
        written, problems = {}, []
        for name, future in p.futures.items():
            if future.cancelled():
                problems.append((name, None))
                continue
            exc = future.exception()
            if exc is not None:
                problems.append((name, exc))
            elif name in job.paths:
                written[name] = future.result()
        fault = next((f for f in (machine_fault(exc, job.paths.get(name, self.layout.root))
                                  for name, exc in problems if exc is not None) if f is not None), None)
        if fault is not None:
            self.fatal = self.fatal or fault
        # The stored frames and the gallery preview serve later runs; only a full disk makes their failure matter.
        problems = [(name, exc) for name, exc in problems if name in job.paths or exc is None]
        if problems:  # a manifest line means the whole clip is done: record nothing (written files stay whole)
            real = [exc for _, exc in problems if exc is not None]  # None: interrupted before it started
            if real and fault is None:  # options were checked before any work: what fails now is this clip's
                self._failed(job, real[0], stop_on_mistake=False)
            return
        if p.claim is not None and not p.claim.held():
            # This process looked dead or hung and another took the clip over: that one records it (its outputs
            # have the same keys and replace ours atomically), so no second manifest line is written here.
            self.summary.skipped.append(job.stem)
            self.events.emit(ClipDone(clip=job.stem, outputs=[], encoded=list(written), skipped=True,
                                      worker=p.worker))
            return
        try:
            files = self.records.finish(job, written, timings=p.timings, info=p.info)
        except OSError as exc:
            fault = machine_fault(exc, self.layout.sidecar(job.stem))
            if fault is None:  # e.g. an output deleted under us: this clip is not done, the others go on
                self._failed(job, exc)
            else:
                self.fatal = self.fatal or fault
            return
        self.summary.done.append(job.stem)
        self.events.emit(ClipDone(clip=job.stem, outputs=[self.layout.relative(f) for f in files[:-1]],
                                  encoded=list(written), worker=p.worker))

    def _failed(self, job: Job, exc: BaseException, worker: str | None = None, *,
                stop_on_mistake: bool = True) -> None:
        if isinstance(exc, AnimateError):
            exc = _placed(exc, job.spec)
            if exc.exit_code == 2 and stop_on_mistake:  # a user mistake repeats for every clip: stop
                self.fatal = self.fatal or exc
                return
        line = exc.line() if isinstance(exc, AnimateError) else \
            f"clip {job.stem}: {type(exc).__name__}: {one_line(exc)}"
        self.summary.failed.append((job.stem, line))
        for event in error_events(exc if isinstance(exc, AnimateError) else AnimateError(line), clip=job.stem,
                                  worker=worker):
            self.events.emit(event)


def one_line(text) -> str:
    """A library's message (or a tool's stderr tail) as one line: its lines joined with ` | `."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    return " | ".join(parts)[:500] or type(text).__name__


def _placed(exc: AnimateError, spec) -> AnimateError:
    """`exc` on one line, and a user mistake naming the script and clip it is about."""
    if getattr(exc, "lines", None):  # a validation pass: already one line per problem, each placed
        return exc
    where = exc.where
    if exc.exit_code == 2 and spec.name not in (where or ""):
        where = f"{spec.script or 'command line'}: clip {spec.name}" + (f": {where}" if where else "")
    if where == exc.where and "\n" not in exc.message:
        return exc
    return type(exc)(one_line(exc.message), where=where, hint=exc.hint)


def run_specs(specs: list, *, out: str | Path, script_stem: str, renderer=None, force: bool = False,
              events: Events | None = None, device: str | None = None, dtype: str | None = None,
              reel: dict | None = None, base_dir: str | Path = ".", keep_frames: bool = True, max_pending: int = 2,
              workers: int = 2, claims: Claims | None = None, backend=None, limits=None,
              compile_unet: bool = False, script=None) -> RunSummary:
    """Render, encode and record every spec that is not up to date; return what happened. `limits`
    (animate.run.limits.Limits, default: the defaults) bounds what the specs may ask of the machine; `script` (the
    loaded Script the specs came from, when there is one) places refusals at their lines.

    `backend` renders somewhere else (animate.run.ray_backend.RayBackend): its `target(device, dtype)` gives the
    (device, dtype label) its workers render with, and `runner(**kwargs)` a Runner subclass that sends renders
    to them; planning, claims, encoding and records stay here."""
    events = events or Events()

    def target() -> tuple[str, str]:
        if renderer is not None:
            return renderer.device, dtype_name(renderer.dtype)
        return backend.target(device, dtype) if backend is not None else compute_target(device, dtype)

    # The same checks and plan as `animate check` (animate.run.preflight), before anything loads.
    checked = preflight(specs, out=out, script_stem=script_stem, target=target, limits=limits, script=script,
                        reel=reel, force=force)
    layout, store, jobs, dev, dt = checked.layout, checked.store, checked.jobs, checked.device, checked.dtype
    records = Records(layout, store)
    work = [job for job in jobs if job.status != "done"]

    sweep_partials(layout.root)  # temp files of writers that are gone; the folder appears on first write
    sweep_partials(store.root)  # a killed frame store write leaves a whole clip's frames in a temp file
    summary = RunSummary(out=layout.root)
    # Announce the plan only once every check has passed (a bad device or option stops before it).
    events.emit(Plan(**build_plan(specs, jobs=jobs, device=dev, dtype=dt, out=layout.root, store=store)))
    for job in jobs:
        if job.status == "done":
            summary.skipped.append(job.stem)
            events.emit(ClipDone(clip=job.stem, outputs=[rec["path"] for rec in job.kept.values()], encoded=[],
                                 skipped=True))

    def make_renderer():
        return renderer or Renderer(device=dev, dtype=dtype, quiet_loading=True, compile=compile_unet)

    claims = claims or Claims(layout.out)
    make_runner = backend.runner if backend is not None else Runner
    runner = make_runner(layout=layout, records=records, store=store, claims=claims, events=events,
                         summary=summary, make_renderer=make_renderer, dtype=dt, force=force, keep_frames=keep_frames,
                         max_pending=max_pending, workers=workers)
    try:
        runner.run(work)
    finally:
        claims.tidy()
        for folder in (layout.root, store.root):  # a process that died meanwhile (its clips taken over here)
            sweep_partials(folder)
        if summary.done or layout.gallery.exists() or records.manifest.entries():  # (a kill may have lost it)
            try:
                records.write_gallery()
            except OSError as exc:
                fault = machine_fault(exc, layout.gallery)
                if fault is None:
                    raise
                runner.fatal = runner.fatal or fault  # one line and exit 1; the next run writes the gallery
    if runner.fatal is not None:
        _stop(events, summary, layout, runner.fatal)
    if reel is not None and not summary.interrupted and not summary.failed:
        t0 = time.perf_counter()
        keys = {job.stem: job.render_key for job in jobs}
        try:
            path = write_script_reel(layout, specs, reel, base_dir, manifest=records.manifest,
                                     render_keys=[keys[spec.stem] for spec in specs])
        except OSError as exc:
            fault = machine_fault(exc, layout.file(REEL_STEM, "mp4"))
            if fault is None:
                raise
            _stop(events, summary, layout, fault)
        events.emit(EncodeDone(clip=REEL_STEM, format="mp4", path=layout.relative(path),
                               bytes=path.stat().st_size, seconds=round(time.perf_counter() - t0, 3)))
    if summary.interrupted:
        _stop(events, summary, layout,
              Interrupted(f"interrupted: {plural(len(summary.done), 'clip')} finished and kept in {layout.root}"))
    _emit_summary(events, summary, layout)
    return summary


def _stop(events: Events, summary: RunSummary, layout: OutputLayout, exc: AnimateError) -> None:
    """End a run with `exc`: its error event, then the summary, then the exception for the command to print."""
    for event in error_events(exc, fatal=True):
        events.emit(event)
    _emit_summary(events, summary, layout)
    exc.reported = True  # the events are out; the command prints the line once and sends no second event
    raise exc


def _emit_summary(events: Events, summary: RunSummary, layout: OutputLayout) -> None:
    events.emit(Summary(out=str(layout.root), rendered=len(summary.rendered),
                        encoded=len([s for s in summary.done if s not in summary.rendered]),
                        up_to_date=len(summary.skipped), failed=len(summary.failed),
                        interrupted=summary.interrupted))


def write_script_reel(layout: OutputLayout, specs: list, options: dict, base_dir: str | Path, *,
                      manifest: Manifest, render_keys: list[str]) -> Path:
    """One MP4 of every clip in script order, from each clip's lossless frames in the frame store. Like a
    clip's output it has a key (the clips' render keys in order, its options, its audio's content) in the
    manifest, and is rebuilt only when that key changes or the file is not the one recorded."""

    path = layout.file(REEL_STEM, "mp4")
    audio = options.get("audio")
    if audio:
        audio = str((Path(base_dir) / audio).resolve())
    heard = content_hash(audio) if audio and Path(audio).exists() else audio
    key = hashlib.sha256(canonical_json({"render_keys": render_keys, "options": {**options, "audio": heard}})
                         .encode("utf-8")).hexdigest()
    if manifest.is_done(REEL_STEM, key, [path]):
        return path
    clips = [read_frames(layout.sidecar(spec.stem)) for spec in specs]
    write_reel(clips, path, fps=options.get("fps"), audio=audio, crossfade=options.get("crossfade") or 0.0)
    manifest.record(REEL_STEM, key, [path], output_key=key)
    return path
