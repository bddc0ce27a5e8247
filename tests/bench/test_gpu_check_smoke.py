"""`python -m benchmarks.gpu_check OUT --smoke` runs the GPU check's code on the CPU with tiny shapes, so it never
rots: every row is in the JSON, and no row failed. The compile row is skipped here (dynamo's trace of the UNet
takes tens of seconds on two shared cores); tests/rendering/test_fastpaths.py covers --compile. Without CUDA and without
--smoke the check stops at once with one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import ROWS

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_gpu_check_smoke_writes_every_row(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", str(out), "--smoke", "--skip", "compile"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "gpu_check-smoke.json").read_text())
    assert (out / "gpu_check-smoke.md").read_text().startswith("| row | result |")
    rows = result["rows"]
    assert set(ROWS) <= set(rows), set(ROWS) - set(rows)
    failed = {k: v for k, v in rows.items() if "error" in v or ("skipped" in v and k != "compile")}
    assert not failed, failed
    assert rows["compile"] == {"skipped": "asked (--skip)"}
    assert rows["sdpa"]["all_sdpa"] is True
    assert rows["unet_flops"]["cfg1.5"]["flop_per_step"] > 1.9 * rows["unet_flops"]["cfg1"]["flop_per_step"]
    assert rows["fp16_vs_fp32"]["max_levels"] <= 8 and rows["nan_check"]["cfg1_latents_finite"] is True
    assert rows["gif_threads"]["same_bytes"] is True
    for name in ("clip_4step_cfg1", "clip_4step_cfg1.5", "clip_8step_cfg1", "clip_8step_cfg1.5", "lora_fused"):
        assert set(rows[name]["median_s"]) >= {"denoise_s", "decode_s", "encode_s"}, name
    assert rows["build"]["params_m"]["lora"] > 0
    plain = rows["plain_diffusers"]["cfg1"]
    # the same components, seed and steps through diffusers' own pipeline: the same frames up to fp16 rounding
    assert plain["frames_max_levels"] <= 2 and plain["e2e_ratio"] > 0 and plain["clip_ratio"] > 0
    assert rows["decode_paths"]["fp16_levels"]["max_levels"] <= 1
    assert rows["decode_paths"]["bf16_levels"]["max_levels"] <= 6
    assert rows["motion_adapter"]["let_go_adapter_params_m"] == 0
    assert {"off", "per_token", "row_slices"} <= set(rows["forward_chunking"])
    for row in ROWS:
        assert f"| {row} |" in proc.stdout


def test_without_cuda_it_stops_at_once_in_one_line(tmp_path):
    if torch.cuda.is_available():  # pragma: no cover - CI has no GPU
        return
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", str(out)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not out.exists()
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_check: no CUDA device here") and "--smoke" in line


def test_the_json_is_rewritten_after_every_row(tmp_path):
    """A run cut off at its time limit keeps every row finished before: each row saves the whole result."""
    saved = []

    class Ctx:
        def before_row(self, keep=()):
            saved.append(("clean", keep))

    check = gpu_check.Check(gpu_check.Budget(100), Ctx(), skip=["c"], save=lambda: saved.append(dict(check.rows)))
    check.row("a", 0, lambda: {"x": 1}, keep=("k",))
    check.row("b", 0, lambda: 1 / 0)
    check.row("c", 0, lambda: {"x": 3})
    check.row("d", 1000, lambda: {"x": 4})
    assert saved[0] == ("clean", ("k",)) and saved[1]["a"]["x"] == 1
    assert saved[3]["b"]["error"].startswith("ZeroDivisionError") and set(saved[3]) == {"a", "b"}
    assert saved[4]["c"] == {"skipped": "asked (--skip)"} and saved[5]["d"]["skipped"].startswith("time budget")


def test_memory_is_weights_peak_and_peak_over_weights(monkeypatch):
    """On CUDA every figure comes from the allocator's counters: the weights alive when the work starts, the
    peak, and what the work added (fakes of torch.cuda's functions: no GPU here)."""
    mib = 2 ** 20
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5000 * mib)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 6000 * mib)
    got = gpu_check.memory("cuda", 2000 * mib)
    assert (got["weights_mb"], got["peak_mb"], got["peak_over_weights_mb"], got["peak_reserved_mb"]) == \
        (2000, 5000, 3000, 6000)
