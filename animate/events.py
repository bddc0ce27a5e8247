"""One event stream for a run: typed events, and the sinks that consume them (terminal bars, `--json` lines on
stdout, Python callbacks). Each event name has exactly one payload shape: the fields of its dataclass."""
from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar
from tqdm import tqdm


@dataclass
class Event:
    name: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return {"event": self.name, "time": round(time.time(), 3), **asdict(self)}


@dataclass
class Plan(Event):
    """What a run or `check` is about to do: every clip with its render key and the outputs it would write."""

    name: ClassVar[str] = "plan"
    out: str | None
    device: str
    dtype: str
    clips: list[dict]  # {clip, seed, render_key, status: render|encode|record|done, encode: [fmt], ...}
    to_render: int
    to_encode: int
    up_to_date: int
    stacks: list[dict]
    loads: dict
    total_estimate_s: float
    frame_store: dict  # {entries, bytes}


@dataclass
class ClipStart(Event):
    name: ClassVar[str] = "clip_start"
    clip: str
    seed: int
    frames: int
    steps: int
    render_key: str
    source: str  # "render" (denoising now) or "store" (frames read back from the frame store)
    worker: str | None = None  # the backend worker (e.g. a Ray actor) doing it; None: this process


@dataclass
class Step(Event):
    name: ClassVar[str] = "step"
    clip: str
    step: int
    total: int
    worker: str | None = None


@dataclass
class EncodeDone(Event):
    name: ClassVar[str] = "encode_done"
    clip: str
    format: str
    path: str
    bytes: int
    seconds: float


@dataclass
class ClipDone(Event):
    """A clip's records are written (or it was already up to date: `skipped`)."""

    name: ClassVar[str] = "clip_done"
    clip: str
    outputs: list[str]
    encoded: list[str]
    skipped: bool = False
    worker: str | None = None


@dataclass
class Error(Event):
    """A problem, with the parts a program needs as fields; `fatal` errors stop the run."""

    name: ClassVar[str] = "error"
    message: str
    clip: str | None = None
    file: str | None = None
    line: int | None = None
    field: str | None = None
    value: Any = None
    hint: str | None = None
    fatal: bool = False
    worker: str | None = None


@dataclass
class Summary(Event):
    name: ClassVar[str] = "summary"
    out: str
    rendered: int
    encoded: int
    up_to_date: int
    failed: int
    interrupted: bool = False


EVENTS: dict[str, type[Event]] = {cls.name: cls for cls in (Plan, ClipStart, Step, EncodeDone, ClipDone, Error,
                                                             Summary)}

# `path:line:col: field: message; hint` (validation lines) or `where: message; hint` (other errors).
_POSITIONED = re.compile(r"^(?P<file>[^:\n]+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<rest>.*)$", re.S)
_FIELD = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]()-]*(?: \([^)]*\))?): (?P<rest>.*)$", re.S)
_VALUE = re.compile(r"\(got (?P<v>[^)]*)\)|got (?P<w>\S+?)[;,)]?$|: (?P<q>'[^']*'|\"[^\"]*\") ")


def error_events(exc, *, clip: str | None = None, fatal: bool = False, worker: str | None = None) -> list[Error]:
    """One Error event per line of an AnimateError, with file, line, field, value and hint split out."""
    lines = getattr(exc, "lines", None) or [exc.line() if hasattr(exc, "line") else str(exc)]
    events = [parse_error_line(text, clip=clip, fatal=fatal) for text in lines]
    for event in events:
        event.worker = worker
    return events


def parse_error_line(text: str, *, clip: str | None = None, fatal: bool = False) -> Error:
    event = Error(message=text, clip=clip, fatal=fatal)
    rest = text
    m = _POSITIONED.match(rest)
    if m and "/" not in m.group("rest")[:1]:
        event.file, event.line, rest = m.group("file"), int(m.group("line")), m.group("rest")
    else:
        head, sep, tail = rest.partition(": ")
        if sep and (head.endswith((".yaml", ".yml", ".json", ".toml")) or head == "command line"
                    or head.startswith("--")):
            event.file, rest = head, tail
            if head.startswith("--"):
                event.file, event.field = "command line", head
    clipped = re.match(r"clip (?P<c>[\w.-]+): (?P<rest>.*)$", rest, re.S)
    if clipped:
        event.clip = event.clip or clipped.group("c")
        rest = clipped.group("rest")
    m = _FIELD.match(rest)
    if m and event.field is None:
        event.field, rest = m.group("field"), m.group("rest")
    body, sep, hint = rest.partition("; ")
    if sep:
        event.hint = hint
    v = _VALUE.search(body)
    if v:
        event.value = next(g for g in v.groups() if g is not None).strip("'\"")
    return event


class Events:
    """The bus: `emit` hands each event to every sink in order; sinks must not raise into the run."""

    def __init__(self, *sinks: Callable[[Event], None]):
        self.sinks = [s for s in sinks if s is not None]
        self._lock = threading.Lock()  # encoder threads emit too

    def emit(self, event: Event) -> None:
        with self._lock:
            for sink in self.sinks:
                sink(event)

    def close(self) -> None:
        for sink in self.sinks:
            closer = getattr(sink, "close", None)
            if closer:
                closer()


# Line breaks to str.splitlines() (and to JavaScript before ES2019) that JSON leaves raw inside strings.
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(event: Event) -> str:
    """An event as one line of JSON (no newline), as `--json` prints it and `animate serve` streams it: text
    stays readable, and no character inside it ends the line for a reader splitting on any line break."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False).translate(_LINE_BREAKS)


class JsonLines:
    """`--json`: one JSON object per event on stdout."""

    def __init__(self, stream=None):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        stream.write(json_line(event) + "\n")
        stream.flush()


class Recorder:
    """Keeps every event (tests, the Python API)."""

    def __init__(self):
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]


class Terminal:
    """Human output on stderr: a clip bar and a step bar per worker (tqdm), error lines and the closing summary."""

    def __init__(self, *, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream
        self._clips = None
        self._steps: dict = {}  # worker (None: this process) → its step bar
        self._stopped = False  # a fatal error was seen: the command prints it, and no summary follows

    def _out(self):
        return self.stream or sys.stderr

    def _tqdm(self, **kw):
        return tqdm(file=self._out(), dynamic_ncols=True, **kw)

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    def _on_plan(self, e: Plan) -> None:
        if not self.quiet:
            self._clips = self._tqdm(total=len(e.clips), desc="clips", unit="clip", position=0)

    def _on_clip_start(self, e: ClipStart) -> None:
        if not self.quiet and e.source == "render":
            self._close_steps(e.worker)
            slot = 1 + sorted(set(self._steps) | {e.worker}, key=str).index(e.worker)  # one line per worker
            label = f"{e.worker} {e.clip}" if e.worker else e.clip
            self._steps[e.worker] = self._tqdm(total=e.steps, desc=label, unit="step", leave=False, position=slot)

    def _on_step(self, e: Step) -> None:
        bar = self._steps.get(e.worker)
        if bar is not None:
            bar.update(e.step - bar.n)

    def _on_clip_done(self, e: ClipDone) -> None:
        if self._clips is not None:
            self._clips.update(1)

    def _on_error(self, e: Error) -> None:
        self._close_steps(... if e.fatal else e.worker)  # other workers' clips go on
        if e.fatal:  # a fatal error is printed once, by the command that stops
            self._stopped = True
        else:
            print(f"error: {e.message}", file=self._out())

    def _on_summary(self, e: Summary) -> None:
        self.close()
        if self._stopped:
            return
        parts = [f"{e.rendered} rendered", f"{e.encoded} encoded", f"{e.up_to_date} up to date", f"{e.failed} failed"]
        print(f"{', '.join(parts)} → {e.out}", file=self._out())

    def _close_steps(self, worker=...) -> None:
        """Close the step bar of `worker`, or every step bar."""
        for key in list(self._steps) if worker is ... else [worker]:
            bar = self._steps.pop(key, None)
            if bar is not None:
                bar.close()

    def close(self) -> None:
        self._close_steps()
        if self._clips is not None:
            self._clips.close()
            self._clips = None


def plural(n: int, word: str) -> str:
    """`1 clip`, `2 clips`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


__all__ = ["Event", "Plan", "ClipStart", "Step", "EncodeDone", "ClipDone", "Error", "Summary", "EVENTS", "Events",
           "JsonLines", "Recorder", "Terminal", "error_events", "json_line", "parse_error_line", "plural"]
