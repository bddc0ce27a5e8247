"""The gallery opens in headless Chromium from the file system and every preview loads and plays."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animate.util.atomic import file_lock
from animate.outputs.gallery import write_gallery
from animate.outputs.layout import OutputLayout



def find_chromium() -> str | None:
    """Headless Chromium: found on PATH, or installed from Debian's packages when this runs as root with apt (as
    on CI and a fresh dev machine), so the README's test command checks the gallery in a real browser there."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Parallel test workers all collect this module: one installs, the others wait and find it.
    with file_lock(Path(tempfile.gettempdir()) / "animate-test-chromium.lock"):
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            if shutil.which("chromium"):
                break
            if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
                return None
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get update && apt-get install -y chromium)")

# Polls until every preview is ready (or 8 s pass), then writes the verdicts into the DOM for --dump-dom.
PROBE = """
<pre id="probe-results"></pre>
<script>
(function () {
  var started = Date.now();
  function verdicts() {
    var out = [];
    document.querySelectorAll("main img").forEach(function (i) {
      out.push({tag: "img", src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                width: i.naturalWidth});
    });
    document.querySelectorAll("main video").forEach(function (v) {
      out.push({tag: "video", src: v.currentSrc, ok: v.readyState >= 2, state: v.readyState,
                error: v.error && v.error.code, width: v.videoWidth});
    });
    return out;
  }
  function poll() {
    var out = verdicts();
    var done = out.every(function (r) { return r.ok; });
    if (done || Date.now() - started > 8000) {
      document.getElementById("probe-results").textContent = JSON.stringify(out);
    } else {
      setTimeout(poll, 100);
    }
  }
  window.addEventListener("load", poll);
})();
</script>
"""


def frames(count=6, size=48):
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    return [np.stack([np.roll(ramp, 8 * i)[None, :].repeat(size, 0),
                      np.full((size, size), 40 * i % 256, np.uint8),
                      ramp[:, None].repeat(size, 1)], axis=-1) for i in range(count)]


def write_gif(path):
    images = [Image.fromarray(f) for f in frames()]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def write_video(path, codec, pix_fmt="yuv420p"):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), (48, 48), fps=8, codec=codec, pix_fmt_out=pix_fmt,
                                         macro_block_size=1, output_params=["-an"])
    writer.send(None)
    for frame in frames(8):
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def run_chromium(page: Path, tmp_path: Path) -> list[dict]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required", "--mute-audio",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    found = re.search(r'<pre id="probe-results">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1), f"no probe results; rc={proc.returncode} stderr={proc.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))


def test_every_preview_loads_in_chromium(tmp_path):
    layout = OutputLayout(tmp_path / "out", "demo")
    layout.prepare()
    write_gif(layout.file("castle", "gif"))
    write_video(layout.file("seasons-s1", "mp4"), "libx264")
    write_video(layout.file("seasons-s2", "webm"), "libvpx-vp9")
    # A file name with characters that must be URL-quoted still loads.
    odd = layout.root / "odd name#1?.gif"
    write_gif(odd)
    for stem in ("castle", "seasons-s1", "seasons-s2"):
        layout.sidecar(stem).write_text("{}")
    hostile = '<img src=x onerror="document.title=\'pwned\'"> & "quotes"'
    entries = [
        {"name": "castle", "seed": 42, "prompt": hostile, "params": {"steps": 6, "guidance": 1.5},
         "preview": "castle.gif", "outputs": ["castle.gif"], "sidecar": "castle.json"},
        {"name": "seasons", "seed": 1, "prompt": {0: "spring", 12: "autumn </dd><script>x</script>"},
         "params": {"frames": 24}, "preview": "seasons-s1.mp4", "outputs": ["seasons-s1.mp4"],
         "sidecar": "seasons-s1.json"},
        {"name": "seasons", "seed": 2, "prompt": "webm", "params": {}, "preview": "seasons-s2.webm",
         "outputs": ["seasons-s2.webm"], "sidecar": "seasons-s2.json"},
        {"name": "odd", "seed": 3, "prompt": "odd", "params": {}, "preview": "odd name#1?.gif",
         "outputs": ["odd name#1?.gif"], "sidecar": None},
    ]
    index = write_gallery(layout, entries)
    assert index == layout.gallery
    text = index.read_text(encoding="utf-8")
    assert "<script" not in text and "onerror=" not in text.replace("onerror=&quot;", "")
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from the network

    page = layout.root / "probe.html"
    page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    results = run_chromium(page, tmp_path)
    assert [r["tag"] for r in results] == ["img", "img", "video", "video"]
    assert all(r["ok"] for r in results), results
    assert all(r["width"] == 48 for r in results), results
    assert {Path(r["src"]).suffix for r in results} == {".gif", ".mp4", ".webm"}
