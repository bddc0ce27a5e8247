"""The page of `animate serve` in real headless Chromium (Debian's package, driven by Playwright): type a prompt,
pick the tiny preset, move a LoRA weight, render, watch the steps, see the clip play and the history list it."""
import pytest

from serve_helpers import free_port, running_server
from test_gallery_browser import CHROMIUM

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
        "--mute-audio"]


def test_the_page_renders_a_clip_with_a_lora_slider(renderer, tmp_path):
    from animate.server.app import create_app
    from animate.server.config import ServeConfig
    from animate.server.queue import JobQueue

    config = ServeConfig(out=tmp_path / "out", device="cpu")
    app = create_app(config, JobQueue(config, renderer=renderer))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    with running_server(app, free_port()) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#prompt", "a paper boat on a pond")
            page.click("#add-keyframe")  # prompt travel: frame 2 has its own prompt
            page.fill(".keyframe .kf-frame", "2")
            page.fill(".keyframe .kf-text", "a paper boat at night")
            page.select_option("#preset", "tiny")
            for field, value in (("#frames", "4"), ("#steps", "2"), ("#width", "32"), ("#height", "32")):
                page.fill(field, value)
            page.click("#add-adapter")
            page.select_option(".adapter .adapter-source", "tiny-zoom-in")
            slider = page.locator(".adapter .adapter-weight")
            slider.focus()
            for _ in range(8):  # 1.00 → 0.60 in steps of 0.05, as arrow keys move a real slider
                page.keyboard.press("ArrowLeft")
            assert page.text_content(".adapter .adapter-weight-value") == "0.60"
            page.click("#render")
            page.wait_for_function("window.animateSteps.length >= 2", timeout=60_000)
            steps = page.evaluate("window.animateSteps")
            assert [s["step"] for s in steps] == [1, 2] and steps[0]["total"] == 2
            page.wait_for_function("""() => { const m = document.querySelector('#result img, #result video');
                return m && (m.tagName === 'IMG' ? m.complete && m.naturalWidth > 0 : m.readyState >= 2); }""",
                                   timeout=60_000)
            assert page.eval_on_selector("#latent", "i => i.complete && i.naturalWidth > 0")
            page.wait_for_selector("#history li[data-stem='a-paper-boat-on-a-pond']", timeout=30_000)
            page.wait_for_function("""() => [...document.querySelectorAll('#history li img')]
                .some(i => i.complete && i.naturalWidth > 0)""", timeout=30_000)
            page.click("#copy-script")
            page.wait_for_function("document.querySelector('#script-text').value.includes('tiny-zoom-in')")
            script = page.input_value("#script-text")
            page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts / "serve-page.png").stat().st_size > 1000
    assert "weight: 0.6" in script and "a paper boat at night" in script and "a paper boat on a pond" in script
    sidecar = (tmp_path / "out" / "serve" / "a-paper-boat-on-a-pond.json").read_text()
    assert '"tiny-zoom-in"' in sidecar or "motion-lora-zoom-in" in sidecar
