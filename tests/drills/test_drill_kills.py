"""SIGKILL at every phase of a job: the output folder stays consistent and the next run finishes the rest."""
import os
import signal
from pathlib import Path

import pytest
from drill_kit import (FORMATS, TARGET, final_name, loaded_pipe, patch_atomic, render_argv, run_child, settle,
                       target_key, track_clip, truncate)


def kill_in_claim(key):
    def install(fire, renderer):
        from animate.outputs.claims import Claims

        real = Claims.try_claim

        def try_claim(self, render_key):
            claim = real(self, render_key)
            if claim is not None and render_key == key:
                fire("claim")  # the claim file is on disk, its owner about to be dead
            return claim

        Claims.try_claim = try_claim
    return install


def kill_in_model(part):
    """Kill inside the UNet (denoise) or the VAE (decode) while the target clip renders."""
    def install(fire, renderer):
        state, pipe = track_clip(renderer), loaded_pipe(renderer)
        cls, method = (type(pipe.unet), "forward") if part == "denoise" else (type(pipe.vae), "decode")
        real = getattr(cls, method)

        def hooked(self, *a, **kw):
            if state.get("clip") == TARGET:
                fire(part)
            return real(self, *a, **kw)

        setattr(cls, method, hooked)
    return install


def kill_mid_write(phase, match):
    """Kill once the writer has filled its temp file (cut in half) and before the rename."""
    def install(fire, renderer):
        patch_atomic(match, lambda dest, tmp: (truncate(tmp), fire(phase)))
    return install


def kill_after_rename(name):
    def install(fire, renderer):
        real = os.replace

        def replace(src, dst, *a, **kw):
            real(src, dst, *a, **kw)
            if Path(dst).name == name:
                fire("rename")  # the output is under its final name; no manifest line yet

        os.replace = replace
    return install


def kill_mid_manifest_line(fire, renderer):
    import json

    from animate.outputs.layout import Manifest

    real = Manifest.append

    def append(self, entry):
        if entry.get("key") == TARGET:
            line = json.dumps(entry).encode()
            with open(self.path, "ab") as fh:
                fh.write(line[:len(line) // 2])  # a torn line, as a kill in the middle of write(2) leaves it
            fire("manifest")
        return real(self, entry)

    Manifest.append = append


def in_root(name):
    return lambda dest: dest.name == name and dest.parent.name == "drill"


PHASES = {
    "claim": lambda key: kill_in_claim(key),
    "denoise": lambda key: kill_in_model("denoise"),
    "decode": lambda key: kill_in_model("decode"),
    "framestore": lambda key: kill_mid_write("framestore", lambda d: d.parent.name == ".frames"
                                             and d.name.startswith(key)),
    **{f"encode-{fmt}": (lambda fmt: lambda key: kill_mid_write(f"encode-{fmt}", in_root(final_name(TARGET, fmt))))(fmt)
       for fmt in FORMATS},
    "preview": lambda key: kill_mid_write("preview", lambda d: d.parent.name == ".previews" and d.stem == TARGET),
    "rename": lambda key: kill_after_rename(f"{TARGET}.gif"),
    "sidecar": lambda key: kill_mid_write("sidecar", in_root(f"{TARGET}.json")),
    "manifest": lambda key: kill_mid_manifest_line,
    "gallery": lambda key: kill_mid_write("gallery", in_root("index.html")),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_sigkill_at_every_phase(phase, warm, drill_script, tmp_path):
    out = tmp_path / "out"
    install = PHASES[phase](target_key(warm, drill_script))
    result = run_child(warm, render_argv(drill_script, out), install, tmp_path / "child")
    assert result.killed, f"{phase}: the kill never fired (status {result.status}): {result.stderr[-2000:]}"
    assert result.fired == [phase]
    settle(phase, warm, drill_script, out, result, faults=1)


def test_child_runs_clean_without_a_fault(warm, drill_script, tmp_path):
    """The harness itself: with no fault the forked command finishes every clip and the next run writes
    nothing (so what the drills find is the fault's doing)."""
    out = tmp_path / "out"
    result = run_child(warm, render_argv(drill_script, out), lambda fire, renderer: None, tmp_path / "child")
    assert result.status == 0 and not result.error_lines(), result.stderr[-2000:]
    assert not result.fired and result.status != -signal.SIGKILL
    settle("clean", warm, drill_script, out, result, faults=0)
