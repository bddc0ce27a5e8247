"""The HTTP API of `animate serve`: a job's SSE events are the `--json` events of the same script run by the CLI,
queued jobs run in order on one warm Renderer, a killed server resumes its job on restart, cancel stops a job
between denoising steps."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from serve_helpers import TINY_SCRIPT, free_port

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from animate.cli import main  # noqa: E402
from animate.server.app import create_app  # noqa: E402
from animate.server.config import ServeConfig  # noqa: E402
from animate.server.queue import JobQueue  # noqa: E402

VARYING = ("time", "seconds", "total_estimate_s", "estimate_s")  # wall-clock measurements


def client_for(out, renderer, **kw):
    config = ServeConfig(out=out, device="cpu", **kw)
    queue = JobQueue(config, renderer=renderer, start=False)
    return TestClient(create_app(config, queue), base_url="http://127.0.0.1:7860"), queue


def post_script(client, text, name="tiny"):
    response = client.post(f"/api/jobs?name={name}", content=text, headers={"content-type": "application/yaml"})
    assert response.status_code == 201, response.text
    return response.json()


def sse_events(client, job_id) -> list[dict]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append(json.loads(line[6:]))
                assert events[-1]["event"] == name
    return events


def normalized(events, out: Path):
    """Events with wall-clock fields dropped and the output root written as <out>."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VARYING}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(out.resolve()), "<out>").replace(str(out), "<out>")
        return value
    return [clean(e) for e in events]


def by_clip(events):
    """The events in the order that is not up to thread timing: the plan first and the summary last, each clip's
    own events in order, except that its encoders (two threads) finish in either order. Clips interleave as
    encoders finish, in any two runs alike."""
    clips = {}
    for e in events[1:-1]:
        clips.setdefault(e["clip"], []).append(e)
    return events[0], events[-1], {clip: ([e for e in own if e["event"] != "encode_done"],
                                          sorted((e for e in own if e["event"] == "encode_done"),
                                                 key=lambda e: e["format"])) for clip, own in clips.items()}


def test_sse_events_equal_the_cli_json_events(kit, renderer, tmp_path):
    script = tmp_path / "tiny.yaml"
    script.write_text(TINY_SCRIPT)
    result = CliRunner().invoke(main, ["render", str(script), "--json", "--out", str(tmp_path / "cli"),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    cli = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    client, queue = client_for(tmp_path / "served", renderer)
    queue.thread.start()
    job = post_script(client, TINY_SCRIPT)
    served = sse_events(client, job["id"])
    assert "step" in [e["event"] for e in served] and served[-1]["event"] == "summary"
    assert by_clip(normalized(served, tmp_path / "served")) == by_clip(normalized(cli, tmp_path / "cli"))
    status = client.get(f"/api/jobs/{job['id']}").json()
    assert status["status"] == "done" and status["outputs"] == ["tiny/fox.gif", "tiny/owl.gif", "tiny/owl.mp4"]
    listed = {f["path"] for f in client.get("/api/outputs").json()["files"]}
    assert {"tiny/fox.gif", "tiny/owl.mp4", "tiny/owl.json", "tiny/manifest.jsonl"} <= listed
    assert client.get("/api/outputs/tiny/owl.mp4").content[4:8] == b"ftyp"
    # "Copy as script": the YAML from a history entry plans the same render key on the command line.
    past = {c["stem"]: c for c in client.get("/api/history").json()["clips"]}
    assert set(past) == {"fox", "owl"}
    copied = tmp_path / "copied.yaml"
    copied.write_text(client.get("/api/history/tiny/owl/script").text)
    check = CliRunner().invoke(main, ["check", str(copied), "--json", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert check.exit_code == 0, check.output
    plan = next(json.loads(line) for line in check.stdout.splitlines() if '"plan"' in line)
    assert plan["clips"][0]["render_key"] == past["owl"]["render_key"]
    queue.stop()


def test_two_queued_jobs_run_in_order_and_the_second_loads_nothing(kit, tmp_path):
    from animate.rendering.renderer import Renderer

    fresh = Renderer(device="cpu")
    client, queue = client_for(tmp_path / "out", fresh)
    counts_at = {}
    queue.listeners.append(lambda job, event: counts_at.setdefault(job.id, dict(fresh.load_counts))
                           if event.name == "plan" else None)
    first = post_script(client, TINY_SCRIPT.replace("seed: 3", "seed: 4"), name="first")
    second = post_script(client, TINY_SCRIPT.replace("seed: 3", "seed: 5"), name="second")
    assert [client.get(f"/api/jobs/{j['id']}").json()["status"] for j in (first, second)] == ["queued", "queued"]
    queue.thread.start()
    done = [queue.wait(j["id"], timeout=120) for j in (first, second)]
    assert [j.status for j in done] == ["done", "done"]
    assert done[0].finished <= done[1].started  # in order, one at a time
    assert counts_at[first["id"]] == {} and counts_at[second["id"]]["model"] == 1
    assert fresh.load_counts == counts_at[second["id"]]  # the second job loaded nothing
    summary = client.get(f"/api/jobs/{second['id']}").json()["summary"]
    assert summary["rendered"] == 2 and summary["up_to_date"] == 0
    queue.stop()


def test_cancel_stops_a_job_between_steps(renderer, tmp_path):
    client, queue = client_for(tmp_path / "out", renderer)
    reached, go = threading.Event(), threading.Event()

    def hold_at_step_two(job, event):
        if event.name == "step" and event.step == 2:
            reached.set()
            go.wait(30)  # the worker waits here, inside step 2's callback, until the cancel is in
    queue.listeners.append(hold_at_step_two)
    queue.thread.start()
    job = post_script(client, TINY_SCRIPT.replace("steps: 2", "steps: 6"))
    assert reached.wait(60)
    response = client.delete(f"/api/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["cancel_requested"]
    go.set()
    assert queue.wait(job["id"], timeout=60).status == "cancelled"
    events = sse_events(client, job["id"])
    assert [(e["clip"], e["step"]) for e in events if e["event"] == "step"] == [("fox", 1), ("fox", 2)]
    assert events[-1]["event"] == "summary" and events[-1]["interrupted"] and events[-1]["rendered"] == 0
    assert events[-2]["event"] == "error" and events[-2]["fatal"]
    folder = tmp_path / "out" / "tiny"
    assert not list(folder.glob("*.gif")) and not (folder / "manifest.jsonl").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if ".part" in p.name or ".tmp" in p.name]
    # A queued job is dropped before it starts.
    go.clear()
    running = post_script(client, TINY_SCRIPT.replace("steps: 2", "steps: 6"), name="again")
    waiting = post_script(client, TINY_SCRIPT, name="later")
    assert client.post(f"/api/jobs/{waiting['id']}/cancel").json()["status"] == "cancelled"
    client.delete(f"/api/jobs/{running['id']}")
    go.set()
    assert queue.wait(running["id"], timeout=60).status == "cancelled"
    assert not (tmp_path / "out" / "later").exists()
    queue.stop()


def _serve(out: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", "from animate.cli import main; main()", "serve", "--out", str(out),
                             "--port", str(port), "--device", "cpu"], env=env, stderr=subprocess.PIPE, text=True)


def _get(url: str, timeout: float = 30.0):
    import httpx

    return httpx.get(url, timeout=timeout)


def _wait_up(proc, url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if _get(url + "/api/options").status_code == 200:
                return
        except OSError:
            pass
        except Exception as exc:  # httpx's connect errors
            if "Connect" not in type(exc).__name__:
                raise
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_a_job_resumes_after_the_server_is_killed(kit, tmp_path):
    import httpx

    out, port = tmp_path / "out", free_port()
    url = f"http://127.0.0.1:{port}"
    # The runner records a clip while the next one denoises: kill during the third, the first one recorded.
    slow = TINY_SCRIPT.replace("outputs: [gif, mp4]}", "outputs: [gif]}\n  - {name: cat, prompt: a cat, scheduler: ddim, steps: 12, frames: 8}")
    proc = _serve(out, port)
    try:
        _wait_up(proc, url)
        job = httpx.post(f"{url}/api/jobs?name=resume", content=slow, timeout=30,
                         headers={"content-type": "application/yaml"}).json()
        deadline = time.monotonic() + 90
        while True:  # kill -9 while the last clip denoises
            status = _get(f"{url}/api/jobs/{job['id']}").json()
            if status["outputs"] and (status["progress"] or {}).get("clip") == "cat":
                break
            assert time.monotonic() < deadline and status["status"] in ("queued", "running"), status
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "resume/fox.gif" in status["outputs"] and status["status"] == "running"
    assert not (out / "resume" / "cat.gif").exists()
    proc = _serve(out, port)
    try:
        _wait_up(proc, url)
        deadline = time.monotonic() + 120
        while (status := _get(f"{url}/api/jobs/{job['id']}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert status["status"] == "done" and status["attempts"] == 2, status
    assert status["summary"]["up_to_date"] >= 1 and status["summary"]["rendered"] == 1  # only cat rendered again
    assert (out / "resume" / "cat.gif").is_file()
    manifest = [json.loads(line) for line in (out / "resume" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(entry["key"] for entry in manifest) == ["cat", "fox", "owl"]  # one line each: none redone
