"""The drill harness: run `animate render` in a child process with a fault installed, then check the output
folder and run again.

Children are forked from the test process after its renderer has loaded the tiny stack, so each one starts in
milliseconds instead of importing torch and loading a pipeline (seconds); the child runs the real command
(`animate.cli.main`), with only `Renderer(...)` handing back that warm renderer. A fault calls `fire()`, which
logs it (the parent counts faults that really happened) and, for kill drills, SIGKILLs the child.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CLIPS = ("c1", "c2", "c3")  # c1 finishes before the fault, c2 takes it, c3 has not started
FORMATS = ("gif", "mp4", "png", "webp")
TARGET = "c2"
CHILD_TIMEOUT_S = 120


@dataclass
class Tally:
    """What the summary line reports: drills run, faults injected (seen to fire), outputs lost."""

    drills: int = 0
    faults: int = 0
    lost: int = 0
    lost_detail: list = field(default_factory=list)

    def line(self) -> str:
        return f"drills: {self.drills} run, {self.faults} faults injected, {self.lost} outputs lost"


TALLY = Tally()


def write_script(folder: Path, name: str = "drill") -> Path:
    """The one script every phase drill reuses: three tiny clips, four output formats."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": list(FORMATS)},
        "clips": [{"name": c, "prompt": f"a lighthouse number {i}"} for i, c in enumerate(CLIPS)]}))
    return script


# ------------------------------------------------------------------ the child

@dataclass
class ChildResult:
    status: int  # the exit code, or -signal
    stdout: str
    stderr: str
    fired: list[str]

    @property
    def killed(self) -> bool:
        return self.status == -signal.SIGKILL

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


def run_child(renderer, argv: list[str], install, workdir: Path) -> ChildResult:
    """Fork; in the child install the fault (`install(fire, renderer)`) and run `animate` with `argv`."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path, fired_path = workdir / "stdout", workdir / "stderr", workdir / "fired"
    for p in (out_path, err_path, fired_path):
        p.write_text("")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            out = open(out_path, "w", buffering=1)
            err = open(err_path, "w", buffering=1)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = out, err
            code = _child(renderer, argv, install, fired_path)
        except BaseException as exc:  # noqa: BLE001 - report anything, then leave without running pytest's code
            import traceback

            with contextlib.suppress(Exception):
                traceback.print_exception(exc, file=sys.stderr)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    status = _wait(pid)
    return ChildResult(status=status, stdout=out_path.read_text(), stderr=err_path.read_text(),
                       fired=[line for line in fired_path.read_text().splitlines() if line])


def _child(renderer, argv, install, fired_path) -> int:
    import animate.rendering.renderer
    from animate.cli import main

    animate.rendering.renderer.Renderer = lambda *a, **kw: renderer  # the warm renderer; everything else is the real path

    def fire(what: str, kill: bool = True) -> None:
        with open(fired_path, "a") as fh:
            fh.write(what + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)

    install(fire, renderer)
    try:
        main.main(args=argv, prog_name="animate")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _wait(pid: int) -> int:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the drill child hung for {CHILD_TIMEOUT_S} s")
        time.sleep(0.01)


# ------------------------------------------------------------------ patching helpers (used inside the child)

def patch_atomic(match, after_body):
    """Wrap `atomic_file`/`atomic_dir` in every animate module that imported them: when `match(dest)`, call
    `after_body(dest, tmp)` once the writer has filled the temp path, before it is fsynced and renamed."""
    import animate.util.atomic as atomic

    def wrap(real):
        @contextlib.contextmanager
        def wrapped(dest):
            with real(dest) as tmp:
                yield tmp
                if match(Path(dest)):
                    after_body(Path(dest), Path(tmp))
        return wrapped

    originals = {atomic.atomic_file: wrap(atomic.atomic_file), atomic.atomic_dir: wrap(atomic.atomic_dir)}
    for module in [m for name, m in sys.modules.items() if name.startswith("animate") and m is not None]:
        for attr in ("atomic_file", "atomic_dir"):
            real = getattr(module, attr, None)
            if real in originals:
                setattr(module, attr, originals[real])


def truncate(tmp: Path) -> None:
    """Leave a temp output half-written (a file cut in half, a frame folder missing half its frames)."""
    if tmp.is_dir():
        for frame in sorted(tmp.iterdir())[len(list(tmp.iterdir())) // 2:]:
            frame.unlink()
    elif tmp.exists():
        data = tmp.read_bytes()
        tmp.write_bytes(data[:len(data) // 2])


def final_name(clip: str, fmt: str) -> str:
    return clip if fmt == "png" else f"{clip}.{fmt}"


def track_clip(renderer) -> dict:
    """`state["clip"]` names the clip the renderer is rendering (for faults inside the pipeline)."""
    cls, state = type(renderer), {}
    real = cls.render

    def render(self, spec, *a, **kw):
        state["clip"] = spec.name
        return real(self, spec, *a, **kw)

    cls.render = render
    return state


def loaded_pipe(renderer):
    return next(iter(renderer.stacks.values())).pipe


def target_key(renderer, script: Path) -> str:
    """The render key of the target clip (the frame store's file name)."""
    from animate.run.jobs import render_key
    from animate.rendering.device import dtype_name
    from animate.spec import load_script, resolve

    spec = next(s for s in resolve(load_script(script)) if s.name == TARGET)
    return render_key(spec, dtype_name(renderer.dtype))


def render_argv(script: Path, out: Path) -> list[str]:
    return ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"]


# ------------------------------------------------------------------ checking a folder

def decodes(path: Path) -> str | None:
    """Why the finished-looking file at `path` is not whole, or None when it reads back."""
    try:
        if path.is_dir():
            frames = sorted(path.glob("frame_*.png"))
            if not frames:
                return "a frame folder with no frames"
            for frame in frames:
                _load_image(frame)
            return None
        suffix = path.suffix.lower()
        if suffix in (".gif", ".webp", ".png"):
            _load_image(path)
        elif suffix == ".mp4":
            import av

            with av.open(str(path)) as container:
                if not sum(1 for _ in container.decode(video=0)):
                    return "an MP4 without frames"
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".html":
            if "</html>" not in path.read_text(encoding="utf-8"):
                return "an HTML page cut short"
        elif suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as data:
                data["frames"].sum()
    except Exception as exc:  # noqa: BLE001 - any failure to read back is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def _load_image(path: Path) -> None:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            frame.load()


@dataclass
class FolderState:
    intact: set  # (clip, format) recorded in the manifest whose file is whole
    broken: list  # what a person would take as finished but is not whole
    listed: set  # clips the manifest lists


def inspect(root: Path, out: Path) -> FolderState:
    """Every manifest line's files exist, have the recorded size and decode; every visible file is whole; the
    frame store holds only whole files."""
    from animate.outputs.layout import Manifest, measure

    intact, broken, listed = set(), [], set()
    manifest = Manifest(root / "manifest.jsonl")
    for key, entry in manifest.entries().items():
        listed.add(key)
        for fmt, rec in (entry.get("outputs") or {}).items():
            path = root / rec["path"]
            if not path.exists():
                broken.append(f"{key}.{fmt}: listed in the manifest but missing")
                continue
            if measure(path) != rec["size"]:
                broken.append(f"{key}.{fmt}: {measure(path)} bytes, the manifest says {rec['size']}")
                continue
            why = decodes(path)
            if why:
                broken.append(f"{key}.{fmt}: {why}")
                continue
            intact.add((key, fmt))
        if not (root / f"{key}.json").is_file():
            broken.append(f"{key}: listed in the manifest without its sidecar")
    if root.exists():
        for path in root.iterdir():
            if path.name.startswith(".") or path.name == "manifest.jsonl":
                continue
            why = decodes(path)
            if why:
                broken.append(f"{path.name} (a final name): {why}")
    store = out / ".frames"
    if store.exists():
        for path in store.glob("[!.]*.npz"):  # final names; temp files are hidden
            why = decodes(path)
            if why:
                broken.append(f"frame store {path.name}: {why}")
    return FolderState(intact=intact, broken=broken, listed=listed)


def expected() -> set:
    return {(clip, fmt) for clip in CLIPS for fmt in FORMATS}


def recover(renderer, script: Path, out: Path) -> tuple[object, set, set]:
    """Run the script again with no fault; return (summary, (clip, format) written, clips skipped)."""
    from animate.events import ClipDone, Events
    from animate.run.runner import run_specs
    from animate.spec import load_script, resolve

    events = []
    loaded = load_script(script)
    summary = run_specs(resolve(loaded), out=out, script_stem=loaded.stem, renderer=renderer,
                        events=Events(events.append))
    written = {(e.clip, fmt) for e in events if isinstance(e, ClipDone) and not e.skipped for fmt in e.encoded}
    skipped = {e.clip for e in events if isinstance(e, ClipDone) and e.skipped}
    return summary, written, skipped


def partials(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".part" in p.name)


def settle(name: str, renderer, script: Path, out: Path, result: ChildResult, faults: int) -> None:
    """After a faulted run: the folder is consistent, the next run writes exactly what is missing, and
    nothing is lost. Records the drill in the tally (failing drills count what they lost)."""
    root = out / script.stem
    after_fault = inspect(root, out)
    missing = expected() - after_fault.intact
    summary, written, skipped = recover(renderer, script, out)
    final = inspect(root, out)
    lost = list(after_fault.broken) + [f"{c}.{f}: not whole after the next run" for c, f in expected() - final.intact]
    lost += final.broken
    gallery = root / "index.html"
    if not gallery.is_file() or any(f"{clip}.json" not in gallery.read_text() for clip in CLIPS):
        lost.append("index.html: missing or not listing every clip after the next run")
    TALLY.drills += 1
    TALLY.faults += faults
    TALLY.lost += len(lost)
    TALLY.lost_detail += [f"{name}: {item}" for item in lost]
    assert not lost, f"{name}: outputs lost: {lost}"
    assert summary.exit_code == 0, f"{name}: the next run failed: {summary.failed}"
    assert written == missing, f"{name}: the next run wrote {sorted(written)}, but {sorted(missing)} was missing"
    assert skipped == {c for c in CLIPS if all((c, f) in after_fault.intact for f in FORMATS)}, name
    assert not partials(out), f"{name}: temp files left after the next run: {partials(out)}"
