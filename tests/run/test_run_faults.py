"""Faults of the machine during a run: one clear line, no partial file under a final name, finished clips kept."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from animate.cli import main


def script_of(tmp_path, n=3, outputs=("gif", "png"), **defaults):
    script = tmp_path / "faults.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": list(outputs), **defaults},
        "clips": [{"name": f"c{i + 1}", "prompt": f"a boat number {i}"} for i in range(n)]}))
    return script


def visible(root):
    """Every file a person (or a pipeline) would take as finished: no hidden temp files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not any(part.startswith(".")
                                                                              for part in p.relative_to(root).parts))


def error_lines(output):
    return [line for line in output.splitlines() if line.startswith("error: ")]


def test_disk_full_mid_run_is_one_line_and_keeps_finished_clips(kit, tmp_path, monkeypatch):
    script, out = script_of(tmp_path), tmp_path / "out"
    real = os.replace

    def full_disk(src, dst, *a, **kw):
        if str(dst).endswith("c2.gif"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", full_disk)
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and "c2.gif" in lines[0] and "disk is full" in lines[0], result.output
    assert "Traceback" not in result.output
    root = out / "faults"
    files = visible(root)
    assert "c1.gif" in files and "c1.json" in files and "c2.gif" not in files
    assert not [p for p in root.rglob("*") if ".part" in p.name]  # the refused temp file is gone too
    keys = [json.loads(line)["key"] for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert "c1" in keys and "c2" not in keys


def mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()})")


def fill(folder):
    """Write into `folder` until its filesystem is full."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_small_real_disk_fills_up(kit, tmp_path):
    """A real tmpfs that fills up after the first clip is done (the pre-check passed): one line, no traceback
    (claims' heartbeats write too), no temp file left, the finished clip whole and listed."""
    out = tmp_path / "small"
    mount_tmpfs(out, "2m")
    try:
        script = script_of(tmp_path, n=6, outputs=("png", "gif"))
        proc = subprocess.Popen([sys.executable, "-m", "animate.cli", "render", str(script), "--out", str(out),
                                 "--json", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "ANIMATE_CLAIM_HEARTBEAT": "0.05"})
        for line in proc.stdout:
            if json.loads(line)["event"] == "clip_done":
                fill(out)
                break
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, err[-2000:]
        lines = error_lines(err)
        assert len(lines) == 1 and "disk is full" in lines[0], err[-2000:]
        assert "Traceback" not in err and "Exception in thread" not in err, err[-2000:]
        root = out / "faults"
        assert not [p for p in out.rglob("*") if ".part" in p.name or p.name.endswith(".tmp")]
        done = [json.loads(line)["key"] for line in (root / "manifest.jsonl").read_text().splitlines()]
        assert "c1" in done and len(done) < 6
        for key in done:  # a finished clip is whole
            assert (root / f"{key}.gif").stat().st_size > 0 and len(list((root / key).glob("*.png"))) == 4
    finally:
        subprocess.run(["umount", str(out)], check=False)


def test_sigterm_is_treated_like_ctrl_c(kit, tmp_path):
    script, out = script_of(tmp_path, n=6, outputs=("gif",)), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "animate.cli", "render", str(script), "--out", str(out), "--json",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "clip_done":
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=300)
    events += [json.loads(line) for line in rest.splitlines() if line.startswith("{")]
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    assert events[-1]["event"] == "summary" and events[-1]["interrupted"] is True
    root = out / "faults"
    assert not [p for p in root.rglob("*") if ".part" in p.name]
    keys = [json.loads(line)["key"] for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert keys and all((root / f"{k}.gif").exists() for k in keys)
    assert len(keys) < 6


def test_interrupt_message_counts_in_words(kit, tmp_path, monkeypatch):
    from animate.rendering.renderer import Renderer

    script, out = script_of(tmp_path, n=3, outputs=("gif",)), tmp_path / "out"
    original = Renderer.render
    calls = []

    def interrupt_third(self, spec, *a, **kw):
        calls.append(spec.stem)
        if len(calls) == 3:
            time.sleep(0.2)
            raise KeyboardInterrupt
        return original(self, spec, *a, **kw)

    monkeypatch.setattr(Renderer, "render", interrupt_third)
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 1 and "2 clips finished" in result.output, result.output


def test_output_root_that_is_a_file_is_one_line(kit, tmp_path):
    from cli_helpers import assert_one_error_line

    script, out = script_of(tmp_path, n=1), tmp_path / "taken"
    out.write_text("not a folder")
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--device", "cpu"])
    assert_one_error_line(result, tmp_path / "nothing", "--out", "is a file")
    assert out.read_text() == "not a folder"


def test_read_only_output_root_is_one_line_before_rendering(kit, tmp_path, monkeypatch):
    from animate.rendering.renderer import Renderer

    out = tmp_path / "ro"
    out.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(out)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({proc.stderr.decode().strip()})")
    try:
        calls = []
        monkeypatch.setattr(Renderer, "render", lambda self, spec, *a, **kw: calls.append(spec.stem))
        result = CliRunner().invoke(main, ["render", str(script_of(tmp_path, n=2)), "--out", str(out),
                                           "--device", "cpu"])
        assert result.exit_code == 2 and calls == [], result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot write" in lines[0] and "read-only" in lines[0], result.output
    finally:
        subprocess.run(["umount", str(out)], check=False)


def test_ctrl_c_while_rendering_gives_the_clips_claim_back(kit, tmp_path, renderer, monkeypatch):
    """The clip being denoised when Ctrl-C (or SIGTERM) arrives holds a claim: it must be released, or the
    process's own heartbeat keeps it alive and a second run in the same process (a notebook, the API) waits
    for it forever."""
    from animate.errors import Interrupted
    from animate.events import Events
    from animate.run.runner import run_specs
    from animate.spec import spec_from_fields

    specs = [spec_from_fields({"preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1,
                               "prompt": f"a boat {i}", "outputs": ["gif"]}, name=f"k{i}")[0] for i in range(2)]
    original = type(renderer).render

    def interrupt_second(self, spec, *a, **kw):
        if spec.stem == "k1":
            raise KeyboardInterrupt
        return original(self, spec, *a, **kw)

    monkeypatch.setattr(type(renderer), "render", interrupt_second)
    with pytest.raises(Interrupted):
        run_specs(specs, out=tmp_path, script_stem="cc", renderer=renderer, events=Events())
    assert not (tmp_path / ".claims").exists()  # no claim left, held or stale
    monkeypatch.setattr(type(renderer), "render", original)
    summary = run_specs(specs, out=tmp_path, script_stem="cc", renderer=renderer, events=Events())
    assert summary.rendered == ["k1"] and summary.skipped == ["k0"]


def test_an_encoder_failing_at_run_time_fails_only_its_clip_in_one_line(kit, tmp_path, monkeypatch):
    """A size budget one clip's content cannot reach, or an encoder raising a multi-line message, fails that
    clip (exit 1, one line naming it); the other clips still render and are recorded."""
    import animate.run.runner

    script = tmp_path / "enc.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "tight", "prompt": "a boat", "outputs": {"gif": {"max_bytes": 300}}},
                  {"name": "noisy", "prompt": "a tree"}, {"name": "fine", "prompt": "a house"}]}))
    original = animate.encode.encode_with_report

    def multi_line(fmt, frames, path, **kw):
        if path.stem == "noisy":
            raise ValueError("first line of a library's message\nsecond line\nthird line")
        return original(fmt, frames, path, **kw)

    monkeypatch.setattr(animate.run.runner, "encode_with_report", multi_line)  # where the runner looks it up
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = sorted(error_lines(result.output), key=lambda line: "tight" in line)  # finished in either order
    assert len(errors) == 2 and len(lines) == 3 and lines[-1].startswith("3 rendered"), result.output
    assert "noisy" in errors[0] and "first line of a library" in errors[0]
    assert "tight" in errors[1] and "cannot fit under 300 bytes" in errors[1]
    keys = [json.loads(line)["key"] for line in (out / "enc" / "manifest.jsonl").read_text().splitlines()]
    assert keys == ["fine"]


def test_a_full_disk_when_claiming_keeps_the_clips_already_rendered(kit, tmp_path, monkeypatch):
    """The claim file of the next clip is a write too: when the disk fills there, the clip rendered just before
    (its encoders still running) is still recorded, and the run ends with the one disk line."""
    from animate.outputs.claims import Claims

    script, out = script_of(tmp_path, n=3, outputs=("gif",)), tmp_path / "out"
    real = Claims.try_claim
    calls = []

    def full_on_second(self, key):
        calls.append(key)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path(key)))
        return real(self, key)

    monkeypatch.setattr(Claims, "try_claim", full_on_second)
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and "disk is full" in lines[0] and "Traceback" not in result.output, result.output
    keys = [json.loads(line)["key"] for line in (out / "faults" / "manifest.jsonl").read_text().splitlines()]
    assert keys == ["c1"] and (out / "faults" / "c1.gif").exists()
    assert not (out / ".claims").exists()


def test_a_full_disk_while_writing_the_reel_is_one_line_an_error_event_and_a_summary(kit, tmp_path, monkeypatch):
    """The reel is written after the clips: a full disk there is the one line on stderr and, with --json, the
    same `error` event then the `summary` on stdout, so a pipeline reading events sees why the run stopped."""
    import animate.run.runner

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "faults" / "reel.mp4"))

    monkeypatch.setattr(animate.run.runner, "write_reel", full)  # where the runner looks it up
    script = tmp_path / "faults.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "outputs": ["reel"], "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "c1", "prompt": "a boat"}]}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "out"), "--json", "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert len(error_lines(result.stderr)) == 1 and "disk is full" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1 and "disk is full" in errors[0]["message"] and errors[0]["fatal"] is True
    assert events[-1]["event"] == "summary" and events[-1]["rendered"] == 1


CTRL_C_DURING_ENCODE = """
import os, signal, sys, threading, time
import numpy as np
from animate.encode import encode_with_report
signal.signal(signal.SIGINT, lambda *a: None)  # the runner's main thread takes Ctrl-C; the encoder must not
# Noise encodes slowly: a few seconds of work (12 GIF or 48 MP4 frames), well past the Ctrl-C at 0.3 s.
frames = np.random.default_rng(0).integers(0, 256, (int(sys.argv[3]), 256, 256, 3), dtype=np.uint8)
done = {}
def encode():
    try:
        done["path"] = encode_with_report(sys.argv[2], frames, sys.argv[1], fps=24)[0]
    except Exception as exc:
        done["error"] = exc
worker = threading.Thread(target=encode)
worker.start()
time.sleep(0.3)
os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of the foreground group
worker.join()
print(done)
"""


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_ctrl_c_in_a_terminal_does_not_kill_the_encoders_of_rendered_clips(tmp_path, fmt):
    """After Ctrl-C the runner still writes the outputs of clips already rendered; ffmpeg, in the terminal's
    process group, used to die of the same SIGINT and fail those clips ("ffmpeg failed writing mp4: 255")."""
    dest = tmp_path / f"clip.{fmt}"
    count = {"gif": 12, "mp4": 48}[fmt]
    proc = subprocess.run([sys.executable, "-c", CTRL_C_DURING_ENCODE, str(dest), fmt, str(count)], capture_output=True,
                          text=True, timeout=300, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'path'" in proc.stdout and "error" not in proc.stdout, proc.stdout
    assert dest.stat().st_size > 0
