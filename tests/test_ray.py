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
    from animate.ray_backend import RayBackend

    return RayBackend(gpus_per_worker=0, workers=2)


def run_ray(script, out, pool=None, *, events=()):
    from animate import load_specs
    from animate.run import run_specs

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
    from animate.renderer import Renderer
    from animate.run import run_specs

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
    from animate.ray_backend import stack_label

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
    from animate.claims import pid_alive

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
    from animate.run import run_specs

    recorder, script = Recorder(), six_clips(tmp_path)
    with pytest.raises(ConfigError) as caught:
        run_specs(load_specs(script), out=tmp_path / "out", script_stem="fleet", device="mps", backend=cpu_pool(),
                  events=Events(recorder))
    assert "device 'mps' is not available" in caught.value.line() and caught.value.exit_code == 2
    starts = [e for e in recorder.events if isinstance(e, ClipStart)]
    assert len(starts) <= 2  # one per worker at most: nothing was sent again
    assert not list((tmp_path / "out").rglob("*.claim"))


def test_worker_errors_come_back_as_the_same_error():
    from animate.ray_backend import error_from_record, error_record

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


# ---------------------------------------------------------------------------------------------- token auth
# Ray >= 2.59's `ray start --head` turns token auth on when it finds a token; `ray.init(address=...)` does not
# follow on its own. The errors below are what Ray 2.60 raises inside `ray.init` (copied from real runs).
RAY_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
GCS_REFUSED = ("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
               '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
               "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing or "
               "incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token'). Ensure that the token for the "
               "cluster is available in a local file (e.g., ~/.ray/auth_token or via RAY_AUTH_TOKEN_PATH) or as the "
               "`RAY_AUTH_TOKEN` environment variable.\n")
FIX = ("run `ray get-auth-token` on the head node and set RAY_AUTH_TOKEN to what it prints here, or copy the "
       "head's ~/.ray/auth_token to this machine")


def refused_by_the_cluster():
    """A token the GCS turned away (none sent, or a wrong one): a ConnectionError over a RuntimeError."""
    try:
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:46379") from RuntimeError(GCS_REFUSED)
    except ConnectionError as exc:
        return exc


@pytest.fixture
def token_sandbox(tmp_path):
    """A HOME of its own and no RAY_AUTH_* variable; Ray's cached auth mode and token are re-read on both ends,
    so nothing here leaks into the session's other Ray tests."""
    ray = pytest.importorskip("ray")
    raylet = pytest.importorskip("ray._raylet")
    if not hasattr(raylet, "AuthenticationTokenLoader"):
        pytest.skip("this Ray has no token authentication")

    def reload():
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()

    with pytest.MonkeyPatch.context() as mp:
        for name in RAY_AUTH_VARS:
            mp.delenv(name, raising=False)
        mp.setenv("HOME", str(tmp_path / "home"))
        mp.setattr(ray, "is_initialized", lambda: False)  # the session's local Ray may be up
        reload()
        yield mp, tmp_path / "home" / ".ray" / "auth_token"
    reload()


def init_raising(exc, seen=None):
    def init(**kwargs):
        from ray._raylet import AuthenticationMode, get_authentication_mode

        if seen is not None:
            seen.append(get_authentication_mode() == AuthenticationMode.TOKEN)
        raise exc
    return init


def render_at_address(tmp_path, *extra):
    return CliRunner().invoke(main, ["render", str(six_clips(tmp_path)), "--out", str(tmp_path / "o"), "--backend",
                                     "ray", "--address", "127.0.0.1:46379", "--gpus-per-worker", "0", "--quiet",
                                     *extra])


def test_a_token_here_makes_the_driver_join_an_address_in_token_mode(token_sandbox):
    """The default token file alone (as `ray start --head` found it) is enough: no RAY_AUTH_MODE by hand."""
    import ray

    from animate.ray_backend import RayBackend

    mp, token_file = token_sandbox
    token_file.parent.mkdir(parents=True)
    token_file.write_text("a" * 64)
    seen = []
    mp.setattr(ray, "init", init_raising(RuntimeError("stop here"), seen))
    with pytest.raises(ConfigError):
        RayBackend(address="127.0.0.1:46379", gpus_per_worker=0).connect()
    assert seen == [True]


def test_without_a_token_the_driver_joins_as_before(token_sandbox):
    import ray

    from animate.ray_backend import RayBackend

    mp, _ = token_sandbox
    seen = []
    mp.setattr(ray, "init", init_raising(RuntimeError("stop here"), seen))
    with pytest.raises(ConfigError):
        RayBackend(address="127.0.0.1:46379", gpus_per_worker=0).connect()
    assert seen == [False]


def test_a_cluster_that_wants_a_token_none_here_is_one_line_naming_the_fix(token_sandbox, kit, tmp_path):
    import ray

    mp, _ = token_sandbox
    mp.setattr(ray, "init", init_raising(refused_by_the_cluster()))
    result = render_at_address(tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --address: the Ray cluster at 127.0.0.1:46379 needs an auth token, and none was found here "
        f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); {FIX}")


def test_a_wrong_token_is_one_line_and_never_printed(token_sandbox, kit, tmp_path):
    import ray

    mp, _ = token_sandbox
    secret = "0123456789abcdef" * 4
    mp.setenv("RAY_AUTH_TOKEN", secret)
    mp.setattr(ray, "init", init_raising(refused_by_the_cluster()))
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and secret not in result.output
    assert result.output.strip() == (
        "error: --address: the Ray cluster at 127.0.0.1:46379 refused the auth token found here (RAY_AUTH_TOKEN, "
        f"RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {FIX}")


def test_token_mode_by_hand_without_a_token_is_one_line_not_a_traceback(token_sandbox, kit, tmp_path):
    """RAY_AUTH_MODE=token and no token: Ray raises its AuthenticationError (a RayError) before connecting."""
    import ray

    mp, _ = token_sandbox
    mp.setenv("RAY_AUTH_MODE", "token")
    mp.setattr(ray, "init", init_raising(ray.exceptions.AuthenticationError(
        "Token authentication is enabled but no authentication token was found")))
    result = render_at_address(tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --address: the Ray cluster at 127.0.0.1:46379 needs an auth token, and none was found here "
        f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); {FIX}"]


def test_auth_turned_off_by_hand_is_named(token_sandbox, kit, tmp_path):
    import ray

    mp, token_file = token_sandbox
    token_file.parent.mkdir(parents=True)
    token_file.write_text("a" * 64)  # a token is here, but RAY_AUTH_MODE says not to send it
    mp.setenv("RAY_AUTH_MODE", "disabled")
    mp.setattr(ray, "init", init_raising(refused_by_the_cluster()))
    result = render_at_address(tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --address: the Ray cluster at 127.0.0.1:46379 needs an auth token, and RAY_AUTH_MODE is "
        f"'disabled' here; unset RAY_AUTH_MODE (or set it to token), and {FIX}")


def test_an_unreachable_cluster_still_says_how_to_start_one(token_sandbox, kit, tmp_path):
    import ray

    mp, _ = token_sandbox
    try:
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:46379") from RuntimeError(
            "Failed to connect to GCS within 60 seconds. GCS may have been killed.")
    except ConnectionError as exc:
        mp.setattr(ray, "init", init_raising(exc))
    result = render_at_address(tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --address: cannot reach a Ray cluster at 127.0.0.1:46379: Failed to connect to Ray cluster at "
        "127.0.0.1:46379; start it with `ray start --head` and give its address (host:6379), or leave --address "
        "out for a local Ray")


def free_port() -> int:
    """A port no socket holds on any address, below the ephemeral range: Ray's servers bind the machine's own
    address with SO_REUSEPORT, so a port that looks free on 127.0.0.1 may be another Ray's, and a port the
    kernel hands out for `bind(0)` may be taken by any Ray process starting meanwhile."""
    import random
    import socket

    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("", port))  # the wildcard conflicts with a holder on any address
            except OSError:
                continue
            return port
    pytest.skip("no free port in 20000-32000")


@pytest.fixture
def ray_head(tmp_path):
    """A real head as the README starts it (`ray start --head`), on 127.0.0.1 with its own HOME holding a token
    (so Ray >= 2.59 turns token auth on) and no RAY_* variable; stopped by its pid, not `ray stop` (which stops
    every Ray on the machine). Yields (port, the env a person on that machine has)."""
    import secrets
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    cli = Path(sys.executable).with_name("ray")
    if not cli.exists() or not shutil.which(str(cli)):
        pytest.skip("no `ray` CLI beside this Python")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths under it must fit 107 bytes
    repo = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_TMPDIR=temp, PYTHONPATH=os.pathsep.join(  # this checkout, on every "node"
        [repo, *filter(None, [os.environ.get("PYTHONPATH")])]))
    port = free_port()
    log = tmp_path / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen([str(cli), "start", "--head", "--port", str(port), "--num-cpus", "2",
                                 "--include-dashboard=false", "--disable-usage-stats", "--block"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        if "Token authentication is enabled" not in log.read_text():
            pytest.skip("this Ray's `ray start --head` leaves token auth off")
        yield port, env
    finally:
        head.terminate()  # `--block` stops the head's processes as it exits
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_render_against_a_plain_ray_start_head_with_token_auth(ray_head, kit, tmp_path):
    """The README's cluster steps: `ray start --head`, then `animate render --backend ray --address`, with no
    RAY_AUTH_MODE set by hand."""
    import subprocess

    port, env = ray_head
    script = tmp_path / "one.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "boat", "prompt": "a boat"}]}))
    done = subprocess.run([sys.executable, "-m", "animate.cli", "render", str(script), "--backend", "ray",
                           "--address", f"127.0.0.1:{port}", "--gpus-per-worker", "0", "--workers", "1",
                           "--out", str(tmp_path / "out"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:] + (tmp_path / "head.log").read_text()[-2000:]
    assert [entry["key"] for entry in manifest_lines(tmp_path / "out" / "one")] == ["boat"]
    token = (tmp_path / "home" / ".ray" / "auth_token").read_text()
    assert token not in done.stdout + done.stderr
