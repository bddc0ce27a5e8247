"""The Ray backend on a local Ray with 2 CPU workers: the same frames and manifest as the local backend, each
stack built once per worker, a killed worker's clip re-run and recorded once, Ctrl-C leaves no claim."""
import json
import os
import signal
import sys
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from animate.cli import main
from animate.errors import ConfigError, Interrupted, OutOfMemory, RenderError
from animate.events import ClipDone, ClipStart, Events, Recorder, Step

STACKS = {"tiny": "a", "tiny-file": "b"}  # the kit's base model as a folder and as one file: two model stacks


def six_clips(tmp_path, **defaults):
    """6 clips on 2 stacks, interleaved in the script (planning groups them)."""
    clips = [{"name": f"{letter}{i}", "prompt": f"a boat number {i}", "model": model}
             for i in range(1, 4) for model, letter in STACKS.items()]
    script = tmp_path / "fleet.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif", "png"],
        **defaults}, "clips": clips}))
    return script


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the session (its start-up costs seconds): 2 CPUs, so 2 CPU workers."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def cpu_pool():
    from animate.run.ray_backend import RayBackend

    return RayBackend(gpus_per_worker=0, workers=2)


def run_ray(script, out, pool=None, *, events=()):
    from animate import load_specs
    from animate.run.runner import run_specs

    pool = pool or cpu_pool()
    summary = run_specs(load_specs(script), out=out, script_stem=script.stem, device="cpu", backend=pool,
                        events=Events(*events))
    return summary, pool


def manifest_lines(root):
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]


def comparable(entry):
    """A manifest entry less what differs between any two runs: its time and the sidecar's size (timings)."""
    files = [{**f, "size": None} if f["path"].endswith(".json") else f for f in entry["files"]]
    return {**{k: v for k, v in entry.items() if k != "time"}, "files": files}


def test_ray_gives_the_local_frames_and_manifest_and_builds_each_stack_once_per_worker(local_ray, kit, renderer,
                                                                                        tmp_path, monkeypatch):
    from animate import load_specs
    from animate.rendering.renderer import Renderer
    from animate.run.runner import run_specs

    script = six_clips(tmp_path)
    t0 = time.perf_counter()
    local = run_specs(load_specs(script), out=tmp_path / "local", script_stem="fleet", renderer=renderer)
    local_s = time.perf_counter() - t0
    assert local.exit_code == 0 and len(local.rendered) == 6

    def no_driver_render(self, *a, **kw):
        raise AssertionError("the driver rendered a clip itself")

    monkeypatch.setattr(Renderer, "render", no_driver_render)  # the workers are other processes
    recorder = Recorder()
    t0 = time.perf_counter()
    summary, pool = run_ray(script, tmp_path / "ray", events=[recorder])
    seconds = time.perf_counter() - t0
    assert summary.exit_code == 0 and sorted(summary.rendered) == sorted(local.rendered)

    ours, theirs = manifest_lines(tmp_path / "ray" / "fleet"), manifest_lines(tmp_path / "local" / "fleet")
    assert sorted(map(json.dumps, map(comparable, ours))) == sorted(map(json.dumps, map(comparable, theirs)))
    for entry in ours:  # frames identical, byte for byte, in both frame stores
        key = entry["render_key"]
        with np.load(tmp_path / "ray" / ".frames" / f"{key}.npz") as a, \
                np.load(tmp_path / "local" / ".frames" / f"{key}.npz") as b:
            assert np.array_equal(a["frames"], b["frames"]), entry["key"]

    done = {e.clip: e.worker for e in recorder.events if isinstance(e, ClipDone)}
    assert set(done) == {f"{letter}{i}" for i in range(1, 4) for letter in "ab"} and set(done.values()) <= {"w0", "w1"}
    assert all(isinstance(e.worker, str) for e in recorder.events if isinstance(e, (Step, ClipStart)))
    specs = {spec.stem: spec for spec in load_specs(script)}
    from animate.run.ray_backend import stack_label

    used = {(worker, stack_label(specs[clip])) for clip, worker in done.items()}
    assert set(pool.builds) == used and set(pool.builds.values()) == {1}, pool.builds
    assert len({stack for _, stack in used}) == 2 and len({worker for worker, _ in used}) == 2
    print(f"\n6 clips, 2 stacks: local {local_s:.1f} s, ray with 2 CPU workers {seconds:.1f} s; {pool.builds}")

    again, _ = run_ray(script, tmp_path / "ray")  # a re-run resumes the same way: nothing to do
    assert again.rendered == [] and len(again.skipped) == 6


def test_a_killed_worker_is_restarted_and_every_clip_lands_once(local_ray, kit, tmp_path):
    script = six_clips(tmp_path)
    recorder, killed, pool = Recorder(), [], cpu_pool()

    def kill_first_render(event):
        # On the worker's first clip start it is still loading its stack: the kill lands mid-clip.
        if isinstance(event, ClipStart) and event.worker and not killed:
            killed.append(event.clip)
            os.kill(pool.pids[event.worker], signal.SIGKILL)

    summary, _ = run_ray(script, tmp_path / "out", pool, events=[recorder, kill_first_render])
    assert summary.exit_code == 0 and not summary.failed
    keys = [entry["key"] for entry in manifest_lines(tmp_path / "out" / "fleet")]
    assert sorted(keys) == sorted({f"{letter}{i}" for i in range(1, 4) for letter in "ab"}), keys  # once each
    starts = [e.clip for e in recorder.events if isinstance(e, ClipStart) and e.source == "render"]
    assert starts.count(killed[0]) == 2 and len(starts) == 7  # the killed clip again, the others once
    assert not (tmp_path / "out" / ".claims").exists()


def test_ctrl_c_stops_the_workers_and_leaves_no_claim(local_ray, kit, tmp_path):
    from animate.util.hosts import pid_alive

    script, pool = six_clips(tmp_path), cpu_pool()

    def interrupt(event):
        if isinstance(event, ClipStart) and event.worker:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run_ray(script, tmp_path / "out", pool, events=[interrupt])
    assert not list((tmp_path / "out").rglob("*.claim"))
    pids = list(pool.pids.values())
    assert pids
    deadline = time.time() + 20
    while any(pid_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in pids)


def test_a_worker_side_user_error_stops_the_run_without_retries(local_ray, kit, tmp_path):
    """A device no worker has: every worker would fail the same way, so the first failure stops the run."""
    from animate import load_specs
    from animate.run.runner import run_specs

    recorder, script = Recorder(), six_clips(tmp_path)
    with pytest.raises(ConfigError) as caught:
        run_specs(load_specs(script), out=tmp_path / "out", script_stem="fleet", device="mps", backend=cpu_pool(),
                  events=Events(recorder))
    assert "device 'mps' is not available" in caught.value.line() and caught.value.exit_code == 2
    starts = [e for e in recorder.events if isinstance(e, ClipStart)]
    assert len(starts) <= 2  # one per worker at most: nothing was sent again
    assert not list((tmp_path / "out").rglob("*.claim"))


def test_worker_errors_come_back_as_the_same_error():
    from animate.run.ray_backend import error_from_record, error_record

    bad = ConfigError("unknown device 'mps'", where="--device", hint="use cpu")
    again = error_from_record(error_record(bad), "c1")
    assert type(again) is ConfigError and again.line() == bad.line() and again.exit_code == 2
    oom = error_from_record(error_record(OutOfMemory("out of GPU memory", hint="lower frames")), "c1")
    assert type(oom) is OutOfMemory and oom.exit_code == 1
    other = error_from_record(error_record(ValueError("boom")), "c1")
    assert type(other) is RenderError and other.line() == "clip c1 failed while rendering: ValueError: boom"


def test_backend_ray_without_ray_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(main, ["render", str(six_clips(tmp_path)), "--out", str(tmp_path / "o"),
                                       "--backend", "ray", "--quiet"])
    assert result.exit_code == 2
    assert result.output.strip() == 'error: --backend ray: needs Ray, which is not installed here; ' \
                                    'pip install "animate[ray]"'


def test_ray_flags_need_the_ray_backend(tmp_path):
    result = CliRunner().invoke(main, ["render", str(six_clips(tmp_path)), "--workers", "2"])
    assert result.exit_code == 2 and "--workers needs --backend ray" in result.output
