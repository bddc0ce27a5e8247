"""Resume: finished clips are skipped, edited clips re-render, a killed run leaves nothing half-written."""
import json
import os
import subprocess
import sys
import textwrap

import yaml
from click.testing import CliRunner

from animate.cli import main


def write_script(path, weights=(0.2, 0.5, 0.9), outputs=("png", "gif")):
    clips = [{"name": f"c{i + 1}", "adapters": [{"name": "zoom", "source": "tiny-zoom-in", "weight": w}]}
             for i, w in enumerate(weights)]
    path.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", "frames": 4, "width": 32,
                                                                "height": 32, "steps": 1, "prompt": "a boat",
                                                                "outputs": list(outputs)},
                                    "clips": clips}))


def count_renders(monkeypatch):
    from animate.rendering.renderer import Renderer

    calls = []
    original = Renderer.render

    def counting(self, spec, *a, **kw):
        calls.append(spec.stem)
        return original(self, spec, *a, **kw)

    monkeypatch.setattr(Renderer, "render", counting)
    return calls


def render(script, out, *extra):
    return CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu", *extra])


def test_rerun_skips_and_edit_rerenders_one(kit, tmp_path, monkeypatch):
    script, out = tmp_path / "resume.yaml", tmp_path / "out"
    write_script(script)
    calls = count_renders(monkeypatch)
    assert render(script, out).exit_code == 0
    assert calls == ["c1", "c2", "c3"]
    manifest = (out / "resume" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 3

    calls.clear()
    result = render(script, out)
    assert result.exit_code == 0 and calls == []  # no pipeline call at all

    write_script(script, weights=(0.2, 0.7, 0.9))  # edit clip 2 only
    calls.clear()
    assert render(script, out).exit_code == 0
    assert calls == ["c2"]

    (out / "resume" / "c3.gif").unlink()  # a missing output is encoded again from the stored frames
    calls.clear()
    assert render(script, out).exit_code == 0
    assert calls == [] and (out / "resume" / "c3.gif").exists()

    calls.clear()
    assert render(script, out, "--force", "--only", "c1").exit_code == 0
    assert calls == ["c1"]


KILLER = textwrap.dedent("""
    import os, signal, sys
    real = os.replace
    def replace(src, dst, *a, **kw):
        if str(dst).endswith("c2.gif"):
            os.kill(os.getpid(), signal.SIGKILL)   # kill -9 while clip c2 is being written
        return real(src, dst, *a, **kw)
    os.replace = replace
    from animate.cli import main
    main(["render", sys.argv[1], "--out", sys.argv[2], "--quiet", "--device", "cpu"])
""")


def test_kill_9_mid_clip_then_complete(kit, tmp_path, monkeypatch):
    script, out = tmp_path / "killed.yaml", tmp_path / "out"
    write_script(script)
    env = {**os.environ, "ANIMATE_CACHE": os.environ["ANIMATE_CACHE"], "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(script), str(out)], env=env, capture_output=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    root = out / "killed"
    visible = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert "c2.gif" not in visible and "c3.gif" not in visible
    manifest = root / "manifest.jsonl"
    recorded = [json.loads(l)["key"] for l in manifest.read_text().splitlines()] if manifest.exists() else []
    # Encoders overlap the next clip, so c1 is recorded (once all its outputs are written) before or after
    # c2's GIF: either way only whole clips are listed.
    assert recorded in ([], ["c1"])
    assert any(".part" in p.name for p in root.iterdir())  # the temp file of the killed write, hidden

    calls = count_renders(monkeypatch)
    assert render(script, out).exit_code == 0
    # A recorded c1 is done; the others render again unless their frames reached the frame store first.
    assert set(calls) <= {"c2", "c3"} | ({"c1"} if not recorded else set()) and len(calls) == len(set(calls))
    assert not [p for p in root.rglob("*") if ".part" in p.name]  # swept on start
    keys = [json.loads(l)["key"] for l in (root / "manifest.jsonl").read_text().splitlines()]
    assert keys == ["c1", "c2", "c3"]
    from PIL import Image

    for name in ("c1", "c2", "c3"):
        with Image.open(root / f"{name}.gif") as im:
            assert im.n_frames == 4


def test_ctrl_c_keeps_finished_clips(kit, tmp_path, monkeypatch):
    from animate.rendering.renderer import Renderer

    script, out = tmp_path / "stop.yaml", tmp_path / "out"
    write_script(script)
    original = Renderer.render

    def interrupt_second(self, spec, *a, **kw):
        if spec.name == "c2":
            raise KeyboardInterrupt
        return original(self, spec, *a, **kw)

    monkeypatch.setattr(Renderer, "render", interrupt_second)
    result = render(script, out)
    assert result.exit_code == 1
    assert "interrupted" in result.output and "1 clip finished" in result.output
    root = out / "stop"
    assert (root / "c1.gif").exists() and not (root / "c2.gif").exists()
    assert not [p for p in root.rglob("*") if ".part" in p.name]


def test_json_events(kit, tmp_path):
    script, out = tmp_path / "events.yaml", tmp_path / "out"
    write_script(script, weights=(0.3,), outputs=("gif",))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--json", "--device", "cpu"])
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "summary"
    assert "clip_start" in kinds and "clip_done" in kinds and kinds.count("step") == 1
    assert events[-1]["rendered"] == 1
    sidecar = json.loads((out / "events" / "c1.json").read_text())
    assert sidecar["spec"]["adapters"][1]["weight"] == 0.3
    assert sidecar["models"]["model"]["kind"] == "folder" and "packages" in sidecar


def test_replacing_a_lora_file_rerenders(kit, tmp_path, monkeypatch):
    import shutil

    lora = tmp_path / "style.safetensors"
    shutil.copy(kit / "motion-lora-zoom-in" / "diffusion_pytorch_model.safetensors", lora)
    script, out = tmp_path / "swap.yaml", tmp_path / "out"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "prompt": "a boat", "outputs": ["gif"]},
        "clips": [{"name": "c1", "adapters": [{"name": "style", "source": "style.safetensors", "kind": "motion"}]}]}))
    calls = count_renders(monkeypatch)
    assert render(script, out).exit_code == 0 and calls == ["c1"]
    shutil.copy(kit / "motion-lora-pan-left" / "diffusion_pytorch_model.safetensors", lora)  # same name
    os.utime(lora, ns=(1, 1))
    assert render(script, out).exit_code == 0 and calls == ["c1", "c1"]
