"""The job queue: each submission is a file under `<out>/.serve/jobs/` (written atomically) and runs, in order, on
one worker thread holding one warm Renderer. A restart re-queues every job that was queued or running; it runs
through the normal resume path, so clips finished before the kill are skipped, not rendered again."""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from animate.errors import AnimateError, Cancelled, Interrupted
from animate.events import Error, Event, Events, error_events, json_line
from animate.server.config import ServeConfig
from animate.server.inputs import Submission, load_submission
from animate.rendering.renderer import Renderer
from animate.run.runner import run_specs
from animate.server.preview import latent_preview_png
from animate.util.atomic import atomic_file
from animate.outputs.layout import JOBS_DIR

FINISHED = ("done", "failed", "cancelled")
MAX_WAITING = 100  # queued jobs; more is refused (429) rather than piling up files
KEEP_EVENTS = 50  # finished jobs whose events (and last preview) stay in memory; older ones keep only status
ID_CHARS = 16


@dataclass
class ServeJob:
    id: str
    stem: str
    suffix: str
    text: str
    created: float
    status: str = "queued"  # queued | running | done | failed | cancelled
    started: float | None = None
    finished: float | None = None
    clips: list = field(default_factory=list)  # stems, in script order
    errors: list = field(default_factory=list)  # the error lines of a failed job
    cancel_requested: bool = False
    attempts: int = 0  # runs started (a restart while it ran adds one)
    # Not persisted: this attempt's events (each one `--json` line), the latest latent preview.
    events: list = field(default_factory=list, repr=False)
    preview: bytes | None = field(default=None, repr=False)
    progress: dict | None = None

    PERSISTED = ("id", "stem", "suffix", "text", "created", "status", "started", "finished", "clips", "errors",
                 "cancel_requested", "attempts")

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in self.PERSISTED}

    def public(self) -> dict:
        """Status for the API: no script text, no events (they have their own resources)."""
        out = {k: v for k, v in self.record().items() if k != "text"}
        summary = next((json.loads(line) for line in reversed(self.events) if '"event": "summary"' in line), None)
        outputs = []
        for line in self.events:
            if '"event": "clip_done"' in line:
                outputs += json.loads(line)["outputs"]
        return {**out, "script": self.stem, "progress": self.progress, "summary": summary,
                "outputs": [f"{self.stem}/{path}" for path in outputs], "events": len(self.events)}


def new_id() -> str:
    return secrets.token_hex(ID_CHARS // 2)


class JobQueue:
    def __init__(self, config: ServeConfig, *, renderer=None, start: bool = True):
        self.config = config
        self.folder = config.out / JOBS_DIR
        self.jobs: dict[str, ServeJob] = {}
        self.waiting: deque[str] = deque()
        self.cond = threading.Condition()
        self.renderer = renderer  # None: made by the worker on its first job (models load then, once)
        self.current: ServeJob | None = None
        self.listeners: list[Callable[[ServeJob, Event], None]] = []  # called for every event (tests, logging)
        self._stopping = False
        self._load()
        self.thread = threading.Thread(target=self._work, name="animate-serve-worker", daemon=True)
        if start:
            self.thread.start()

    # ------------------------------------------------------------------ persistence
    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _save(self, job: ServeJob) -> None:
        with atomic_file(self._path(job.id)) as tmp:
            tmp.write_text(json.dumps(job.record(), ensure_ascii=False), encoding="utf-8")

    def _load(self) -> None:
        """Every job file; the ones a killed server left queued or running go back on the queue in order."""
        if not self.folder.is_dir():
            return
        found = []
        for path in self.folder.glob("*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                job = ServeJob(**{k: data[k] for k in ServeJob.PERSISTED if k in data})
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a torn or foreign file: not a job
            if job.id == path.stem:
                found.append(job)
        for job in sorted(found, key=lambda j: j.created):
            self.jobs[job.id] = job
            if job.status in ("queued", "running"):
                if job.cancel_requested:
                    job.status, job.finished = "cancelled", time.time()
                    self._save(job)
                else:
                    job.status = "queued"
                    self.waiting.append(job.id)

    # ------------------------------------------------------------------ the API's side
    def submit(self, sub: Submission) -> ServeJob:
        """Check `sub` now (a ConfigError for the 422), then queue it."""
        _, specs = load_submission(sub, self.config)
        with self.cond:
            if len(self.waiting) >= MAX_WAITING:
                raise QueueFull(f"{len(self.waiting)} jobs are waiting")
            job = ServeJob(id=new_id(), stem=sub.stem, suffix=sub.suffix, text=sub.text, created=time.time(),
                           clips=[spec.stem for spec in specs])
            self._save(job)
            self.jobs[job.id] = job
            self.waiting.append(job.id)
            self.cond.notify_all()
        return job

    def cancel(self, job_id: str) -> ServeJob | None:
        """A queued job is dropped now; a running one stops before its next denoising step."""
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None or job.status in FINISHED:
                return job
            job.cancel_requested = True
            if job.status == "queued":
                self.waiting.remove(job.id)
                job.status, job.finished = "cancelled", time.time()
            self._save(job)
            self.cond.notify_all()
        return job

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.waiting and not self._stopping:
                    self.cond.wait()
                if self._stopping:
                    return
                job = self.jobs[self.waiting.popleft()]
                job.status, job.started, job.attempts = "running", time.time(), job.attempts + 1
                job.events, job.preview, job.progress, job.errors = [], None, None, []
                self.current = job
                self._save(job)
            try:
                status = self._run(job)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any one job
                status = "failed"
                self._emit(job, Error(message=f"the server failed running this job: {type(exc).__name__}: {exc}",
                                      fatal=True))
            with self.cond:
                job.status, job.finished = status, time.time()
                self.current = None
                self._save(job)
                self._forget_old_events()
                self.cond.notify_all()

    def _forget_old_events(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in FINISHED and (j.events or j.preview)]
        for old in finished[:-KEEP_EVENTS]:
            old.events, old.preview = [], None

    def _run(self, job: ServeJob) -> str:
        events = Events(lambda event: self._emit(job, event))
        try:
            script, specs = load_submission(Submission(job.stem, job.suffix, job.text), self.config)
            summary = run_specs(specs, out=self.config.out, script_stem=job.stem, renderer=self._renderer(),
                                events=events, reel=script.model.reel_options(), base_dir=script.base_dir,
                                limits=self.config.limits)
        except (Interrupted, Cancelled, KeyboardInterrupt) as exc:
            if isinstance(exc, AnimateError) and not getattr(exc, "reported", False):
                self._emit_error(job, exc)
            job.errors = [str(exc)] if not job.cancel_requested else []
            return "cancelled" if job.cancel_requested else "failed"
        except AnimateError as exc:
            if not getattr(exc, "reported", False):  # as `animate render --json` prints it
                self._emit_error(job, exc)
            job.errors = exc.line().splitlines()
            return "failed"
        if summary.failed:
            job.errors = [line for _, line in summary.failed]
        return "failed" if summary.exit_code else "done"

    def _renderer(self):
        if self.renderer is None:
            self.renderer = Renderer(device=self.config.device, dtype=self.config.dtype, quiet_loading=True)
        self.renderer.watch = self._watch
        return self.renderer

    def _watch(self, spec, step: int, total: int, latents) -> None:
        """After each denoising step: the live preview, and the stop a cancel asked for."""
        job = self.current
        if job is None:
            return
        job.progress = {"clip": spec.stem, "step": step, "total": total}
        try:
            job.preview = latent_preview_png(latents) or job.preview
        except Exception:  # noqa: BLE001 - a preview is a nicety; the render goes on without it
            pass
        if job.cancel_requested:
            raise Cancelled(f"job {job.id} cancelled at step {step} of {total}")

    def _emit_error(self, job: ServeJob, exc: AnimateError) -> None:
        for event in error_events(exc, fatal=True):
            self._emit(job, event)

    def _emit(self, job: ServeJob, event: Event) -> None:
        line = json_line(event)  # exactly a `--json` line
        with self.cond:
            job.events.append(line)
            self.cond.notify_all()
        for listener in list(self.listeners):
            listener(job, event)

    def wait(self, job_id: str, timeout: float = 60.0) -> ServeJob:
        """Block until the job is finished (tests, scripts embedding the queue)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            job = self.jobs[job_id]
            while job.status not in FINISHED:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} is still {job.status}")
                self.cond.wait(left)
            return job


class QueueFull(Exception):
    """Too many jobs are waiting."""
