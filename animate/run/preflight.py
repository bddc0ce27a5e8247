"""The one preflight of `check` and `render` (and `--dry-run`, `replay`, the server): the reel's name, limits,
every clip check, then the plan and the room it needs, so both refuse a script with the same lines before a model
loads."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from animate.errors import ConfigError
from animate.outputs.framestore import FrameStore
from animate.outputs.layout import Manifest, OutputLayout
from animate.run.checks import check_output_root, check_specs, estimate_jobs_bytes
from animate.run.jobs import Job, plan_jobs
from animate.run.limits import Limits

if TYPE_CHECKING:
    from animate.spec import ClipSpec, Script

REEL_STEM = "reel"  # the script reel's file name beside the clips


@dataclass
class Preflight:
    """What passed every check: the plan `check` prints and `render` runs."""

    layout: OutputLayout
    store: FrameStore
    jobs: list[Job]
    device: str
    dtype: str


def preflight(specs: list[ClipSpec], *, out: str | os.PathLike, script_stem: str,
              target: Callable[[], tuple[str, str]], limits: Limits | None = None, script: Script | None = None,
              reel: dict | None = None, reachable: bool = True, force: bool = False) -> Preflight:
    """Everything refused before anything loads, for `check` and `render` alike, then the plan: `target()` gives
    the (device, dtype label) render keys are made for. `reachable=False` (`check`) leaves uncached hub ids to the
    plan's warnings instead of probing the hub; every other check runs the same way for both."""
    if reel is not None and any(spec.stem == REEL_STEM for spec in specs):
        raise ConfigError("a clip named `reel` would collide with the script's reel output", where="reel",
                          hint="rename the clip")
    check_specs(specs, reachable=reachable, out=out, limits=limits, script=script)
    device, dtype = target()
    layout = OutputLayout(out, script_stem)
    store = FrameStore(layout.out)
    jobs = plan_jobs(specs, layout, Manifest(layout.manifest), store, dtype=dtype, force=force)
    check_output_root(layout.root, estimate_jobs_bytes(jobs))
    return Preflight(layout, store, jobs, device, dtype)
