"""Claims: processes sharing one output folder split its clips; a dead or silent owner's claim is taken over."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import yaml

from animate.outputs.claims import Claims
from animate.util.hosts import pid_alive


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


KEY = "0123456789abcdef0123456789abcdef"


def test_one_owner_at_a_time(tmp_path):
    claims = Claims(tmp_path, heartbeat=60)
    first = claims.try_claim(KEY)
    assert first is not None
    assert claims.try_claim(KEY) is None  # this process already holds it (another job with the same frames)
    assert Claims(tmp_path).try_claim(KEY) is None
    record = claims.owner(KEY)
    assert record["pid"] == os.getpid() and record["token"] == first.token
    first.release()
    assert claims.owner(KEY) is None
    again = claims.try_claim(KEY)
    assert again is not None
    again.release()
    claims.tidy()
    assert not (tmp_path / ".claims").exists()  # nothing left behind


def write_record(claims, **record):
    claims.root.mkdir(parents=True, exist_ok=True)
    claims.path(KEY).write_text(json.dumps({"key": KEY, "token": "x", **record}))


def test_dead_owner_on_this_host_is_taken_over(tmp_path):
    claims = Claims(tmp_path, heartbeat=60)
    pid = dead_pid()
    assert not pid_alive(pid)
    write_record(claims, host=claims.host, pid=pid, heartbeat=time.time())
    taken = claims.try_claim(KEY)
    assert taken is not None and claims.owner(KEY)["pid"] == os.getpid()
    taken.release()


def test_silent_owner_elsewhere_is_taken_over_only_when_stale(tmp_path):
    claims = Claims(tmp_path, heartbeat=1, stale_after=30)
    write_record(claims, host="another-machine", pid=1, heartbeat=time.time() - 5)
    assert claims.try_claim(KEY) is None  # beating recently: a live owner on another host
    write_record(claims, host="another-machine", pid=1, heartbeat=time.time() - 31)
    taken = claims.try_claim(KEY)
    assert taken is not None
    taken.release()


def test_heartbeat_refreshes_and_notices_a_takeover(tmp_path):
    claims = Claims(tmp_path, heartbeat=0.05, stale_after=10)
    claim = claims.try_claim(KEY)
    first = claims.owner(KEY)["heartbeat"]
    deadline = time.time() + 5
    while claims.owner(KEY)["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.02)
    assert claims.owner(KEY)["heartbeat"] > first
    write_record(claims, host="another-machine", pid=1, heartbeat=time.time())  # someone took it over
    deadline = time.time() + 5
    while not claim.lost and time.time() < deadline:
        time.sleep(0.02)
    assert claim.lost
    claim.release()
    assert claims.owner(KEY)["host"] == "another-machine"  # releasing never removes another owner's claim


def six_clip_script(tmp_path):
    script = tmp_path / "shared.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": f"c{i}", "prompt": f"a boat number {i}"} for i in range(6)]}))
    return script


DIES_ON_FIRST_RENDER = textwrap.dedent("""
    import os, signal, sys
    from animate.rendering.renderer import Renderer
    def die(self, spec, *a, **kw):
        print("claimed", spec.stem, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # kill -9 mid-clip, while holding its claim
    Renderer.render = die
    from animate.cli import main
    main(["render", sys.argv[1], "--out", sys.argv[2], "--quiet", "--device", "cpu"])
""")


def start(args, env):
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def env_for_children():
    return {**os.environ, "OMP_NUM_THREADS": "1", "ANIMATE_CLAIM_HEARTBEAT": "0.5"}


def manifest_keys(root):
    return [json.loads(line)["key"] for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_two_processes_split_a_script_and_render_each_clip_once(kit, tmp_path):
    script, out = six_clip_script(tmp_path), tmp_path / "out"
    env = env_for_children()
    cmd = ["-m", "animate.cli", "render", str(script), "--out", str(out), "--json", "--device", "cpu"]
    procs = [start(cmd, env) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    summaries = [json.loads(line) for stdout, _ in results for line in stdout.splitlines()
                 if '"event": "summary"' in line]
    assert sum(s["rendered"] for s in summaries) == 6  # every clip rendered exactly once in total
    keys = manifest_keys(out / "shared")
    assert sorted(keys) == [f"c{i}" for i in range(6)]  # and listed once
    assert not (out / ".claims").exists()


def test_a_killed_owners_clip_is_taken_over(kit, tmp_path):
    script, out = six_clip_script(tmp_path), tmp_path / "out"
    env = env_for_children()
    killed = start(["-c", DIES_ON_FIRST_RENDER, str(script), str(out)], env)
    line = killed.stdout.readline()  # it holds a claim now
    assert line.startswith("claimed"), killed.stderr.read()[-2000:]
    victim = line.split()[1]
    survivor = start(["-m", "animate.cli", "render", str(script), "--out", str(out), "--quiet", "--device", "cpu"],
                     env)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-2000:]
    keys = manifest_keys(out / "shared")
    assert sorted(keys) == [f"c{i}" for i in range(6)] and victim in keys
    assert not [p for p in (out / "shared").rglob("*") if ".part" in p.name]


def test_a_heartbeat_on_a_full_disk_misses_a_beat_quietly(tmp_path, monkeypatch):
    """A full disk must not kill the heartbeat thread with a traceback on stderr, nor leave its temp record
    behind (which keeps `tidy` from removing the claims folder); the beat resumes once there is room."""
    import errno
    import threading

    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    claims = Claims(tmp_path, heartbeat=0.05, stale_after=10)
    claim = claims.try_claim(KEY)
    real = os.replace

    def full(src, dst, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    time.sleep(0.5)  # several beats fail
    monkeypatch.setattr(os, "replace", real)
    assert not crashes and not claim.lost
    assert not list(claims.root.glob(".*.tmp"))
    before = claims.owner(KEY)["heartbeat"]
    deadline = time.time() + 5
    while claims.owner(KEY)["heartbeat"] == before and time.time() < deadline:
        time.sleep(0.02)
    assert claims.owner(KEY)["heartbeat"] > before
    claim.release()
    claims.tidy()
    assert not claims.root.exists()


def test_a_pid_from_another_pid_namespace_is_never_taken_for_dead(tmp_path):
    """Containers with host networking share the hostname but not pids: an owner there whose pid means nothing
    here is judged by its heartbeat, not by `kill(pid, 0)` in this namespace."""
    import socket

    claims = Claims(tmp_path, heartbeat=60)
    if os.path.exists("/proc/self/ns/pid"):
        assert claims.host != socket.gethostname() and claims.host.startswith(socket.gethostname())
    write_record(claims, host=f"{socket.gethostname()}/pidns:1", pid=dead_pid(), heartbeat=time.time())
    assert claims.try_claim(KEY) is None  # beating: alive in its own namespace


def test_a_run_that_lost_its_claim_records_nothing_twice(renderer, tmp_path):
    """A run that hung past the stale time finds its clip taken over when it comes back: the new owner records
    the clip, so this run writes no manifest line for it (a second one would list the clip twice)."""
    from animate.events import ClipStart, Events
    from animate.run.runner import run_specs
    from animate.spec import load_script, resolve

    script = tmp_path / "lost.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "kept", "prompt": "a kept clip"}, {"name": "taken", "prompt": "a taken clip"}]}))
    specs, out = resolve(load_script(script)), tmp_path / "out"
    claims = Claims(out)

    def take_over(event):
        if isinstance(event, ClipStart) and event.clip == "taken":
            claims.path(event.render_key).write_text(json.dumps({  # another process's now, as after a takeover
                "key": event.render_key, "host": "another-machine", "pid": 1, "token": "theirs",
                "heartbeat": time.time()}))

    summary = run_specs(specs, out=out, script_stem="lost", renderer=renderer, events=Events(take_over))
    assert summary.done == ["kept"] and summary.skipped == ["taken"]
    assert manifest_keys(out / "lost") == ["kept"]
    assert len(claims.live()) == 1 and claims.live()[0]["token"] == "theirs"  # their claim is left alone
