"""The Ray backend: one prompt script over many GPUs and machines.

The driver (this process) plans, claims, encodes and records exactly as the local backend does: the runner below
is the local `Runner` with another loop. Only rendering moves: a pool of Ray actors, each a `RenderWorker`
holding one Renderer (its model stack built once, kept for the clips that follow, `num_gpus` per actor), takes
ClipSpecs as plain data (`ClipSpec.to_dict`) and streams back its steps and then the clip's uint8 frames.
The driver sends a job to a worker that already holds its stack when one is free, and hands the frames to the
same frame store → encoder pool → records path as a local render, so results land where a local run puts them
and a re-run resumes the same way. Frames come back to the driver, so the output folder may be the driver's
own disk (per-node disks) or a folder every node mounts (then several drivers share it through the claims).

Faults: a worker that dies (killed, segfault, the kernel's OOM killer) is restarted by Ray (`max_restarts`)
and its job is claimed and sent again: nothing is recorded before a clip's frames are back and written
atomically, so a job run twice (at-least-once delivery) lands once. A failure that would repeat is not
retried: an AnimateError (bad input, exit code 2, stops the run; out of memory at the last rung of the memory
ladder fails the clip). Ctrl-C stops the workers and releases every claim.

Ray is an optional extra (`pip install "animate[ray]"`), imported only here, inside functions."""
from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from animate import errors
from animate.errors import AnimateError, ConfigError, RenderError
from animate.events import ClipStart, Step
from animate.run.jobs import Job, stack_key
from animate.rendering.device import dtype_name
from animate.run.runner import POLL_S, Runner
from animate.rendering.renderer import Renderer
from animate.rendering.device import pick_dtype
from animate.spec import ClipSpec
import logging
from animate.run.ray_auth import auth_error, auth_refused, settle_auth, unreachable

WORKER_RESTARTS = 4  # times Ray restarts one dead worker before the driver gives up on it
JOB_ATTEMPTS = 3  # a job whose worker died this many times fails (it may be what kills them)
WAIT_S = 0.1  # how long the driver waits for worker messages before it looks at its encoders again
# Variables the workers need to load models the way the driver would (a cluster's nodes have their own env).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_ENDPOINT", "TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY",
                 "HF_HUB_DISABLE_PROGRESS_BARS")


def import_ray():
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray  # optional extra: loaded on use
    except ImportError:
        raise ConfigError("needs Ray, which is not installed here", where="--backend ray",
                          hint='pip install "animate[ray]"') from None
    return ray


def stack_label(spec) -> str:
    return f"{spec.model.describe()} + {spec.motion_adapter.describe()}"


def error_record(exc: BaseException) -> dict:
    """An exception as plain data (AnimateErrors keep their class, where and hint)."""
    if isinstance(exc, AnimateError):
        return {"type": type(exc).__name__, "message": exc.message, "where": exc.where, "hint": exc.hint,
                "lines": list(getattr(exc, "lines", None) or [])}
    return {"type": None, "message": f"{type(exc).__name__}: {exc}"}


def error_from_record(record: dict, stem: str) -> AnimateError:
    cls = getattr(errors, record.get("type") or "", None)
    if not (isinstance(cls, type) and issubclass(cls, AnimateError)):
        return RenderError(f"clip {stem} failed while rendering: {record['message']}")
    exc = cls(record["message"], where=record.get("where"), hint=record.get("hint"))
    if record.get("lines"):
        exc.lines = record["lines"]
    return exc


class RenderWorker:
    """A Ray actor's body: one Renderer whose model stack stays loaded across the clips it is sent."""

    def __init__(self, device: str, dtype: str | None):
        self.device, self.dtype = device, dtype
        self.renderer = None

    def pid(self) -> int:
        return os.getpid()

    def render(self, spec_data: dict):
        """A Ray streaming generator: {started}, then {step} per denoising step, then {frames ...} or {error}."""
        yield {"started": True, "pid": os.getpid(), "host": socket.gethostname()}
        messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._render, args=(spec_data, messages), daemon=True).start()
        while True:
            message = messages.get()
            yield message
            if "step" not in message:
                return

    def _render(self, spec_data: dict, messages: queue.Queue) -> None:
        try:
            spec = ClipSpec.from_dict(spec_data)
            if self.renderer is None:
                self.renderer = Renderer(device=self.device, dtype=self.dtype, quiet_loading=True)
            built = stack_key(spec) not in self.renderer.stacks
            self.renderer.on_step = lambda _spec, step, total: messages.put({"step": step, "total": total})
            result = self.renderer.render(spec)
            messages.put({"frames": result.frames, "timings": result.timings,
                          "info": {**result.info, "node": socket.gethostname()}, "built": built})
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the driver as data
            messages.put({"error": error_record(exc)})


@dataclass
class _Slot:
    """One worker as the driver sees it."""

    label: str
    actor: object
    stack: tuple | None = None  # the stack it holds (or was last sent)
    deaths: int = 0
    busy: bool = False  # rendering, or restarting after a death until a ping comes back
    ping_at: float | None = None  # when to ping it next while it restarts


@dataclass
class _Flight:
    """A job out on a worker."""

    job: Job
    claim: object
    slot: _Slot
    started: bool = False  # the worker began it (a job sent to a restarting worker never did)


@dataclass
class RayBackend:
    """`animate render --backend ray`: where the workers are and what each one holds.

    After a run, `builds[(worker, stack)]` counts how often each worker built each model stack and `pids` holds
    each worker's last process id."""

    address: str | None = None
    gpus_per_worker: float = 1.0
    workers: int | None = None
    builds: dict = field(default_factory=dict)
    pids: dict = field(default_factory=dict)
    device: str = field(default="cpu", init=False)  # set by `target`, before any worker starts
    dtype: str | None = field(default=None, init=False)

    def __post_init__(self):
        import_ray()
        if self.gpus_per_worker < 0:
            raise ConfigError(f"must be 0 or more (got {self.gpus_per_worker:g})", where="--gpus-per-worker",
                              hint="use 1 for one GPU per worker, 0 for CPU workers")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"must be 1 or more (got {self.workers})", where="--workers")

    def target(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        """(device, dtype label) the workers render with: render keys need the dtype before any worker runs,
        and the driver may have no GPU while its workers do."""

        if device in (None, "auto"):
            device = "cuda" if self.gpus_per_worker > 0 else "cpu"
        elif device.startswith("cuda") and self.gpus_per_worker == 0:
            raise ConfigError(f"workers without GPUs cannot render on {device}", where="--device",
                              hint="give --gpus-per-worker 1 or use --device cpu")
        self.device, self.dtype = device, dtype
        return device, dtype_name(pick_dtype(device, dtype))

    def runner(self, **kwargs) -> "RayRunner":
        return RayRunner(self, **kwargs)

    # ------------------------------------------------------------------ the pool
    def connect(self) -> bool:
        """Join the cluster at `address`, or start a local Ray; True when this call started it."""

        ray = import_ray()
        if ray.is_initialized():
            return False
        sends_token, refused = settle_auth(self.address) if self.address is not None else (False, None)
        if refused is not None:
            if auth_refused(refused):
                raise auth_error(self.address, sends_token, refused)
            raise unreachable(self.address, refused)
        try:
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=bool(os.environ.get("ANIMATE_DEBUG")))
        except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
            if self.address is not None and auth_refused(exc):
                raise auth_error(self.address, sends_token, exc) from None
            raise unreachable(self.address, exc) from None
        return True

    def pool_size(self, jobs: int) -> int:
        ray = import_ray()
        resources = ray.cluster_resources()
        if self.gpus_per_worker > 0:
            gpus = resources.get("GPU", 0)
            if gpus < self.gpus_per_worker:
                raise ConfigError(f"the Ray cluster has {gpus:g} GPU(s), fewer than one worker needs "
                                  f"({self.gpus_per_worker:g})", where="--gpus-per-worker",
                                  hint="use --gpus-per-worker 0 for CPU workers, or join a cluster with GPUs")
            fits = int(gpus // self.gpus_per_worker)
        else:
            fits = max(1, int(resources.get("CPU", 1)))
        if self.workers is not None and self.workers > fits:
            raise ConfigError(f"the Ray cluster fits {fits} worker(s) of {self.gpus_per_worker:g} GPU(s) and 1 CPU, "
                              f"not {self.workers}", where="--workers",
                              hint=f"use --workers {fits} or fewer, or add nodes to the cluster")
        return max(1, min(self.workers or fits, jobs))

    def start_workers(self, count: int) -> list[_Slot]:
        ray = import_ray()
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        actor = ray.remote(RenderWorker).options(
            num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=WORKER_RESTARTS, max_task_retries=0,
            runtime_env={"env_vars": env} if env else None)
        return [_Slot(f"w{i}", actor.remote(self.device, self.dtype)) for i in range(count)]

    def stop_workers(self, slots: list[_Slot]) -> None:
        ray = import_ray()
        for slot in slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


class RayRunner(Runner):
    """The local runner's claims, encoders and records, with renders sent to Ray workers."""

    def __init__(self, backend: RayBackend, **kwargs):
        super().__init__(**kwargs)
        self.backend = backend
        self.slots: list[_Slot] = []
        self.flights: dict = {}  # ObjectRefGenerator → _Flight
        self.pings: dict = {}  # ObjectRef of a restarting worker's pid() → its _Slot
        self.attempts: dict[str, int] = {}  # render key → times its worker died under it
        self.started_ray = False  # this run connected to Ray: it disconnects (a local Ray it started stops)

    def run(self, jobs: list[Job]) -> None:
        try:
            self._loop(jobs)
        except KeyboardInterrupt:
            self._release_flights()
            self.backend.stop_workers(self.slots)
            self.interrupted()
        finally:
            self._release_flights()
            self.backend.stop_workers(self.slots)
            self.pool.shutdown(wait=True)
            for p in self.pending:  # only when something escaped: give the claims back, keep nothing half-done
                if p.claim is not None:
                    p.claim.release()
            if self.started_ray:
                import_ray().shutdown()

    def _loop(self, jobs: list[Job]) -> None:
        ray = import_ray()
        queue_, waiting = deque(jobs), []
        renders = [job for job in jobs if job.status == "render"]
        if renders:  # only re-encoding or re-recording: no Ray at all
            self.started_ray = self.backend.connect()
            self.slots = self.backend.start_workers(self.backend.pool_size(len(renders)))
        while (queue_ or waiting or self.flights or self.pending) and self.fatal is None:
            if not queue_ and waiting and not self.flights:  # the rest is held by other processes
                time.sleep(POLL_S)
                queue_.extend(waiting)
                waiting.clear()
            self._dispatch(queue_, waiting)
            self._ping_restarting()
            if self.flights or self.pings:
                ready, _ = ray.wait(list(self.flights) + list(self.pings), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    if ref in self.pings:
                        self._pinged(ref)
                    else:
                        self._receive(ref, queue_)
            elif self.pending:
                self.collect(block=True)
                continue
            else:  # every worker is restarting: ping them again soon
                time.sleep(WAIT_S)
            self.collect(block=False)
            if not self.slots and (queue_ or waiting) and self.fatal is None:
                self.fatal = RenderError("every Ray worker died and Ray could not restart them",
                                         hint="see the Ray logs (/tmp/ray/session_latest/logs) on the nodes")
        while self.pending:  # a fatal error stops new work; clips already rendered still get their outputs
            self.collect(block=True)

    # ------------------------------------------------------------------ sending jobs
    def _dispatch(self, queue_: deque, waiting: list) -> None:
        """Give each idle worker a job, preferring one of the stack it holds; store-only jobs run here."""
        while queue_ and self.fatal is None:
            if len(self.pending) >= self.max_pending + len(self.slots):  # frames waiting for encoders
                return
            idle = [slot for slot in self.slots if not slot.busy]
            job = self._pick(queue_, idle[0]) if idle else next((j for j in queue_ if j.status != "render"), None)
            if job is None:
                return
            queue_.remove(job)
            taken = self.take(job, waiting)
            if taken is None:
                continue
            claim, fresh = taken
            frames, render_now = self.stored_frames(fresh)
            if not render_now:  # frames from the store, or only the records: no worker needed
                spec = fresh.spec
                self.events.emit(ClipStart(clip=fresh.stem, seed=spec.seed, frames=spec.frames, steps=spec.steps,
                                           render_key=fresh.render_key, source="store"))
                self.deliver(fresh, claim, frames)
                continue
            if not idle:  # planned from the store, but its frames are gone since: it waits for a worker now
                claim.release()
                queue_.appendleft(fresh)
                return
            self._send(fresh, claim, self._pick_slot(fresh, idle))

    def _pick(self, queue_: deque, slot: _Slot) -> Job:
        """The job for `slot`: one of the stack it holds, else one of a stack no worker holds, else the first."""
        held = {s.stack for s in self.slots if s is not slot}
        for wanted in (lambda key: key == slot.stack, lambda key: key not in held):
            for job in queue_:
                if job.status == "render" and wanted(stack_key(job.spec)):
                    return job
        return queue_[0]

    def _pick_slot(self, job: Job, idle: list[_Slot]) -> _Slot:
        key = stack_key(job.spec)
        return next((slot for slot in idle if slot.stack == key), idle[0])

    def _send(self, job: Job, claim, slot: _Slot) -> None:
        slot.busy, slot.stack = True, stack_key(job.spec)
        gen = slot.actor.render.remote(job.spec.to_dict())
        self.flights[gen] = _Flight(job, claim, slot)

    # ------------------------------------------------------------------ what comes back
    def _receive(self, gen, queue_: deque) -> None:
        ray = import_ray()
        flight = self.flights[gen]
        job, slot = flight.job, flight.slot
        try:
            message = ray.get(next(gen))
        except StopIteration:
            message = {"error": {"type": None, "message": "the worker ended the clip without frames"}}
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OutOfMemoryError):
            self._worker_died(gen, queue_)
            return
        if "started" in message:
            flight.started = True
            self.backend.pids[slot.label] = message["pid"]
            spec = job.spec
            self.events.emit(ClipStart(clip=job.stem, seed=spec.seed, frames=spec.frames, steps=spec.steps,
                                       render_key=job.render_key, source="render", worker=slot.label))
            return
        if "step" in message:
            self.events.emit(Step(clip=job.stem, step=message["step"], total=message["total"], worker=slot.label))
            return
        del self.flights[gen]
        slot.busy = False
        if "error" in message:
            self.render_failed(job, flight.claim, error_from_record(message["error"], job.stem), slot.label)
            return
        if message.get("built"):
            key = (slot.label, stack_label(job.spec))
            self.backend.builds[key] = self.backend.builds.get(key, 0) + 1
        self.deliver(job, flight.claim, message["frames"], message["timings"], message["info"], rendered=True,
                      worker=slot.label)

    def _worker_died(self, gen, queue_: deque) -> None:
        """Ray restarts the worker (it gets work again once it answers a ping); its job goes back to the front of
        the queue, claimed again when it is sent."""
        flight = self.flights.pop(gen)
        job, slot = flight.job, flight.slot
        slot.stack = None
        slot.deaths += 1
        if slot.deaths > WORKER_RESTARTS:
            self.slots.remove(slot)
        else:
            slot.ping_at = time.time()
        if flight.started:
            self.attempts[job.render_key] = self.attempts.get(job.render_key, 0) + 1
        if self.attempts.get(job.render_key, 0) >= JOB_ATTEMPTS:
            self.render_failed(job, flight.claim, RenderError(
                f"clip {job.stem}: its Ray worker died {JOB_ATTEMPTS} times while rendering it",
                hint="see the Ray logs (/tmp/ray/session_latest/logs); lower frames or size if memory ran out"),
                slot.label)
            return
        flight.claim.release()  # another process may take it meanwhile: both paths end in one manifest line
        queue_.appendleft(job)

    def _ping_restarting(self) -> None:
        now = time.time()
        for slot in self.slots:
            if slot.ping_at is not None and slot.ping_at <= now:
                slot.ping_at = None
                self.pings[slot.actor.pid.remote()] = slot

    def _pinged(self, ref) -> None:
        ray = import_ray()
        slot = self.pings.pop(ref)
        try:
            self.backend.pids[slot.label] = ray.get(ref)
        except ray.exceptions.ActorDiedError:  # out of restarts: the pool goes on without it
            self.slots.remove(slot)
        except ray.exceptions.RayActorError:  # still restarting
            slot.ping_at = time.time() + POLL_S
        else:
            slot.busy = False

    def _release_flights(self) -> None:
        for flight in self.flights.values():
            flight.claim.release()
        self.flights.clear()
