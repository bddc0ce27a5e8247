"""`python -m benchmarks.gpu_check --smoke` runs the GPU check's code on the CPU with tiny shapes, so it never
rots: every row is in the JSON, and no row failed. The compile row is skipped here (dynamo's trace of the
four-level UNet takes ~100 s on two shared cores); tests/rendering/test_fastpaths.py covers --compile."""
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_check import ROWS

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_smoke_writes_every_row(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--skip", "compile",
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert set(ROWS) <= set(rows), set(ROWS) - set(rows)
    failed = {k: v for k, v in rows.items() if "error" in v or ("skipped" in v and k != "compile")}
    assert not failed, failed
    assert rows["compile"] == {"skipped": "asked (--skip)"}
    assert rows["sdpa"]["all_sdpa"] is True
    assert rows["unet_flops"]["cfg1.5"]["flop_per_step"] > 1.9 * rows["unet_flops"]["cfg1"]["flop_per_step"]
    assert rows["fp16_vs_fp32"]["max_levels"] <= 8 and rows["nan_check"]["cfg1_latents_finite"] is True
    assert rows["gif_threads"]["same_bytes"] is True
    assert set(rows["clip_cfg1"]["median_s"]) >= {"denoise_s", "decode_s", "encode_s"}
    for row in ROWS:
        assert f"| {row} |" in proc.stdout
