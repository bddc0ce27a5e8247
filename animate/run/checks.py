"""Every check that needs no model loaded, for all clips before anything is written or loaded.

`check_specs` runs them for `animate.run.preflight` (the one entry point of `check`, `render`, `--dry-run`,
`replay` and the server) and for the Python API: output options, scheduler step limits, model sources
(reachable, and LoRA files that are LoRAs fit for their slot), pose sources, video-to-video passes, keyframes, the
model family and the output root. Each failure is one line naming the script, the clip, the field, the value and
the fix.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from animate.errors import AnimateError, ConfigError, ModelError, OutputError
from animate.models.family import base_family
from animate.models.fit import check_family
from animate.run.limits import Limits, check_limits
from animate.models.sources import Source, check_reachable
from animate.models.weights import read_safetensors_keys
from animate.models.sources import cached_hub_file
from animate.models.schedulers import check_steps
from animate.encode import check_output
from animate.models.weights import check_weights
from motion.errors import MotionError
from motion.loras import check_slot, inspect_lora, pick_weight_name
from animate.rendering.keyframes import KEYFRAMES
from animate.rendering.variants import active

if TYPE_CHECKING:
    from animate.spec import ClipSpec, Script

def check_specs(specs: list[ClipSpec], *, reachable: bool = True, out: str | os.PathLike | None = None,
                planned_bytes: int | None = None, limits: Limits | None = None, script: Script | None = None) -> None:
    """Check every clip, then the output root when `out` is given (room for `planned_bytes` when known:
    `estimate_jobs_bytes` of a plan, or `sum(estimate_output_bytes(spec))`).

    Resource limits come first (animate.run.limits; `limits` None: the defaults), located in `script` when given;
    past them every check runs on every clip and all the problems found are raised together, one line each
    (`Problems`), so a script is fixed in one pass. `reachable=False` skips the hub look-ups (`animate check`
    reports uncached hub ids as plan warnings); LoRA files are still read and checked."""

    check_limits(specs, limits, script)
    seen: set = set()
    problems = Problems()
    for spec in specs:
        label = clip_label(spec)
        with problems.collect():
            check_outputs(spec, label)
        with problems.collect():
            check_steps(spec, label)
        for conditioning in active(spec):  # pose, keyframes, video-to-video: each variant's own checks
            if conditioning is not KEYFRAMES:
                with problems.collect():
                    conditioning.check(spec, label)
        check_sources(spec, label, reachable=reachable, seen=seen, problems=problems)
        if KEYFRAMES.active(spec):  # after the sources: the SparseCtrl model's config is read
            with problems.collect():
                KEYFRAMES.check(spec, label)
        with problems.collect():
            check_family(spec, label, [model for c in active(spec) for model in c.models(spec)])
    if out is not None:
        with problems.collect():
            check_output_root(Path(out), planned_bytes)
    problems.raise_any()


class Problems:
    """What one check pass found. A single problem is raised as it is; several become one ConfigError with a
    line each (the CLI prints every line, `--json` makes an event of each), the first SHOWN of them."""

    SHOWN = 20

    def __init__(self):
        self.errors: list[AnimateError] = []

    @contextmanager
    def collect(self):
        try:
            yield
        except AnimateError as exc:
            self.errors.append(exc)

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            lines = list(dict.fromkeys(line for exc in self.errors for line in exc.line().splitlines()))
            if len(lines) > self.SHOWN:
                lines = lines[:self.SHOWN] + [f"... and {len(lines) - self.SHOWN} more problems like these"]
            raise ConfigError(lines[0], lines=lines)


def clip_label(spec: ClipSpec) -> str:
    """Where a clip's problems are reported: `script.yaml: clip NAME` (or `command line: clip NAME`)."""
    return f"{spec.script or 'command line'}: clip {spec.name}"


# ------------------------------------------------------------------ outputs

RESERVED_OUTPUT_OPTIONS = {"fps": "set the clip's `fps` (or re-encode with `animate encode --fps`)",
                           "metadata": "animate embeds the clip spec itself", "path": "paths follow the clip name"}


def check_outputs(spec: ClipSpec, label: str) -> None:
    """Every output's options as its encoder judges them for this clip's size, length and fps (unknown keys,
    values, limits such as GIF's fps), without encoding anything; options animate sets itself are refused."""

    for fmt, options in spec.outputs.items():
        for key in options or {}:
            if key in RESERVED_OUTPUT_OPTIONS:
                raise ConfigError(f"outputs.{fmt}.{key} cannot be set per output", where=label,
                                  hint=RESERVED_OUTPUT_OPTIONS[key])
        try:
            check_output(fmt, dict(options or {}), fps=spec.fps, frames=spec.frames, width=spec.width,
                         height=spec.height)
        except AnimateError as exc:
            raise type(exc)(exc.message, where=f"{label}: {exc.where or f'outputs.{fmt}'}", hint=exc.hint) \
                from None


# ------------------------------------------------------------------ scheduler limits


# ------------------------------------------------------------------ conditioning


# ------------------------------------------------------------------ model sources

def check_sources(spec: ClipSpec, label: str, *, reachable: bool, seen: set, problems: Problems) -> None:
    """Model, motion adapter, adapters, ControlNet, in that order: the first that can't be had is named, or
    whose local files fail their `sha256:` pin or their .safetensors header check (animate.models.weights).
    `seen` holds sources already checked for earlier clips (a bad one is reported for the first clip using
    it). The failure goes into `problems`."""

    family = base_family(spec.model) or "sd15"
    checks = [(spec.model, "model", None), (spec.motion_adapter, "motion_adapter", None)]
    if spec.unet is not None:
        checks.append((spec.unet, "unet", None))
    checks += [(a.source, f"adapters[{i}] ({a.name})", a.kind) for i, a in enumerate(spec.adapters)]
    if spec.pose:
        checks.append((spec.pose.controlnet, "pose.controlnet", None))
    if spec.keyframes:
        checks.append((spec.keyframes.sparsectrl, "sparsectrl", None))
    for src, field_name, kind in checks:
        key = (src.key(), src.sha256, kind, family)
        if key in seen:
            continue
        seen.add(key)
        found = len(problems.errors)
        with problems.collect():
            try:
                check_weights(src, field_name)
                if kind is None:
                    if reachable:
                        check_reachable(src, field_name)
                else:
                    check_adapter(src, kind, field_name, reachable, family=family)
            except ModelError as exc:
                raise ModelError(exc.message, where=f"{label}: {exc.where or field_name}", hint=exc.hint) from None
        if len(problems.errors) > found:
            break  # the clip's first source that fails is named: the rest often fail for the same reason (no hub)


def check_adapter(src: Source, kind: str, field_name: str, reachable: bool = True, family: str = "sd15") -> None:
    """The source can be had, and a LoRA file we can read without downloading (local, or already in the hub
    cache) is a LoRA that fits its slot and the base's `family` (read from its header)."""

    if reachable:
        check_reachable(src, field_name)
    try:
        local = src.local_file()
        if local is None and src.kind == "folder":
            local = Path(src.ref) / pick_weight_name(Path(src.ref))
        if local is None and src.kind == "hub" and src.weight_name:
            cached = cached_hub_file(src.ref, src.weight_name, src.revision)
            local = Path(cached) if cached else None
        if local is not None and local.suffix == ".safetensors":  # pickle files (opted in) have no header
            check_slot(inspect_lora(read_safetensors_keys(local)), kind, src.describe(), family)
    except MotionError as exc:
        raise ModelError(str(exc), where=field_name) from None


# ------------------------------------------------------------------ output root

# Bytes written per raw RGB byte (frames × width × height × 3), generous: the tiny kit's noise-like frames, which
# barely compress, stay under them (tests/run/test_checks.py); real clips write a half to a tenth of this.
FORMAT_FACTORS = {"gif": 0.5, "webp": 0.5, "mp4": 0.3, "webm": 0.3, "png": 1.0, "prores": 0.6, "ffv1": 1.0,
                  "sheet": 0.1}
UNKNOWN_FORMAT_FACTOR = 1.0
FRAME_STORE_FACTOR = 0.5  # the lossless compressed copy every render keeps for re-encoding
SIDECAR_BYTES = 64 * 1024  # sidecar JSON, manifest line, gallery share


def estimate_output_bytes(spec: ClipSpec, formats=None, *, frame_store: bool = True) -> int:
    """About how many bytes a clip writes (rough, on the generous side): its outputs (or only `formats`),
    its sidecar, and its lossless copy in the frame store unless `frame_store=False`."""
    raw = spec.frames * spec.width * spec.height * 3
    total = SIDECAR_BYTES + (raw * FRAME_STORE_FACTOR if frame_store else 0)
    for fmt in spec.outputs if formats is None else formats:
        options = spec.outputs.get(fmt) or {}
        factor = FORMAT_FACTORS.get(fmt, UNKNOWN_FORMAT_FACTOR)
        frames = max(1, _int(options.get("interpolate"), 1)) * (2 if options.get("pingpong") else 1)
        depth = 2 if _int(options.get("bits"), 8) > 8 else 1
        total += raw * factor * frames * depth
    return int(total)


def estimate_jobs_bytes(jobs) -> int:
    """What a plan's jobs (animate.run.jobs.Job) still write: the outputs each encodes now, plus the frame store
    copy of each clip it renders; up-to-date jobs write nothing."""
    return sum(estimate_output_bytes(job.spec, job.encode, frame_store=job.status == "render")
               for job in jobs if job.status != "done")


def _int(value, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def check_output_root(out: Path, planned_bytes: int | None = None) -> None:
    """The output root (or its nearest existing parent, where it will be made) is a folder we can write,
    on a filesystem with room for `planned_bytes`."""
    out = Path(out).expanduser()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "the output root" if existing == out else f"{existing}, a parent of the output root,"
        raise OutputError(f"{what} is a file, not a folder", where=f"--out {out}",
                          hint="give a folder (it is made if missing), or move the file away")
    if not _writable(existing):
        raise OutputError(f"cannot write in {existing} (read-only or no permission)", where=f"--out {out}",
                          hint="choose a folder you can write, e.g. --out ./outputs")
    if planned_bytes:
        free = shutil.disk_usage(existing).free
        if free < planned_bytes:
            raise OutputError(f"the planned outputs need about {_size(planned_bytes)} but only {_size(free)} is free "
                              f"on the filesystem of {existing}", where=f"--out {out}",
                              hint="free some space, render fewer clips or formats, or choose another --out")


def _writable(folder: Path) -> bool:
    # os.access can say yes where a write still fails (root on NFS with root squash, immutable folders, ACLs,
    # SELinux), so a real file decides.
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".animate-write-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            break
        n /= 1024
    return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
