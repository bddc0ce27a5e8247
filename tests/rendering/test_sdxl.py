"""The SDXL family on the tiny kit's SDXL-shaped parts: clips equal diffusers' own AnimateDiffSDXLPipeline call
(with a LoRA, with and without guidance, and with an SDXL-Lightning style full UNet), scripts render, resume and
default to the base's native size, and each family mismatch or unsupported feature is one line before a load."""
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from animate.cli import main
from animate.spec import spec_from_fields
from cli_helpers import assert_one_error_line

XL = dict(model="tiny-xl", motion_adapter="tiny-xl-motion", scheduler="lcm", steps=2, guidance=1.0, frames=8,
          width=32, height=32, seed=3, prompt="a red fox in snow", negative="blurry")
XL_LORA = {"name": "lcm", "source": "tiny-xl-lcm", "weight": 0.9}


@pytest.fixture(scope="module")
def xl(kit):
    from animate.models.tiny_xl import ensure_xl

    return ensure_xl(kit)


@pytest.fixture(scope="module")
def xl_renderer(xl):
    from animate.rendering.renderer import Renderer

    return Renderer(device="cpu", quiet_loading=True)


def reference(xl, fields, *, lora=None, unet_file=None, scheduler="LCMScheduler", **scheduler_options):
    """What a diffusers user writes by hand for the same clip."""
    import diffusers
    from diffusers import AnimateDiffSDXLPipeline, MotionAdapter, UNet2DConditionModel
    from safetensors.torch import load_file

    unet = UNet2DConditionModel.from_pretrained(str(xl / "base"), subfolder="unet")
    if unet_file is not None:
        unet.load_state_dict(load_file(str(unet_file)))
    adapter = MotionAdapter.from_pretrained(str(xl / "motion-adapter"))
    pipe = AnimateDiffSDXLPipeline.from_pretrained(str(xl / "base"), motion_adapter=adapter, unet=unet)
    # diffusers' UNetMotionModel.from_unet2d leaves SDXL's add_embedding at random init (animate.models.family): give it
    # the UNet's own weights, as the renderer does, so both run the same weights.
    pipe.unet.add_embedding.load_state_dict(unet.add_embedding.state_dict())
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config, **scheduler_options)
    if lora:
        pipe.load_lora_weights(str(xl / "lcm-lora"), weight_name="pytorch_lora_weights.safetensors",
                               adapter_name=lora["name"])
        pipe.set_adapters([lora["name"]], [lora["weight"]])
    return pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=fields["frames"],
                height=fields["height"], width=fields["width"], num_inference_steps=fields["steps"],
                guidance_scale=fields["guidance"], generator=torch.Generator("cpu").manual_seed(fields["seed"]),
                output_type="np").frames[0]


def test_diffusers_drops_the_added_embedding_and_the_renderer_restores_it(xl, xl_renderer):
    from diffusers import AnimateDiffSDXLPipeline, MotionAdapter, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(xl / "base"), subfolder="unet")
    adapter = MotionAdapter.from_pretrained(str(xl / "motion-adapter"))
    plain = AnimateDiffSDXLPipeline.from_pretrained(str(xl / "base"), motion_adapter=adapter)
    want = unet.add_embedding.linear_1.weight
    assert not torch.equal(plain.unet.add_embedding.linear_1.weight, want)  # the gap this works around
    pipe, _, _ = xl_renderer.pipeline_call(spec_from_fields(XL)[0])
    assert torch.equal(pipe.unet.add_embedding.linear_1.weight, want)


def as_uint8(frames):
    return (np.clip(frames, 0, 1) * 255).round().astype(int)


@pytest.mark.parametrize("guidance", [1.0, 1.8])
def test_sdxl_clip_equals_diffusers(xl, xl_renderer, guidance):
    fields = {**XL, "guidance": guidance}
    result = xl_renderer.render(spec_from_fields({**fields, "adapters": [XL_LORA]})[0])
    ref = reference(xl, fields, lora=XL_LORA)
    assert result.frames.shape == (8, 32, 32, 3)
    assert np.abs(result.frames.astype(int) - as_uint8(ref)).max() <= 1
    assert result.frames.std() > 5  # real content, not a flat frame


def test_sdxl_lora_mixing_fuse_and_schedules(xl_renderer):
    def floats(weight, fuse):
        spec = spec_from_fields({**XL, "adapters": [{**XL_LORA, "weight": weight}], "fuse": fuse})[0]
        return xl_renderer.render(spec, keep_float=True).float_frames

    unfused = floats(0.9, False)
    assert np.abs(floats(0.9, True) - unfused).max() <= 1e-4  # fused, then unfused again for the next clip
    ramp = floats({"start": 0.0, "end": 0.9}, True)  # a schedule keeps the LoRA unfused and moves per step
    assert np.abs(ramp - unfused).max() > 1e-3 and np.abs(floats(0.0, False) - unfused).max() > 1e-3


def test_loop_and_free_init_run_on_sdxl(xl_renderer, monkeypatch):
    from motion.context import LoopShift

    rolls = []
    original = LoopShift.roll_latents
    monkeypatch.setattr(LoopShift, "roll_latents", lambda self, x, s: (rolls.append(s), original(self, x, s))[1])
    plain = xl_renderer.render(spec_from_fields(XL)[0]).frames
    looped = xl_renderer.render(spec_from_fields({**XL, "loop": True})[0])
    assert rolls == [4, 4] and looped.info["loop_closure"] is not None  # rolled between steps, back at the end
    free_init = xl_renderer.render(spec_from_fields({**XL, "free_init": {"iters": 2}})[0])
    assert free_init.info["free_init"]["denoising_steps"] == 4  # 2 steps, twice
    assert np.abs(free_init.frames.astype(int) - plain.astype(int)).max() > 3


def test_lightning_unet_clip_equals_diffusers(xl, xl_renderer):
    fields = {**XL, "scheduler": "lightning-xl", "guidance": 0.0}
    unet_file = xl / "sdxl_lightning_2step_unet.safetensors"
    ours = xl_renderer.render(spec_from_fields({**fields, "unet": "tiny-xl-lightning-unet"})[0]).frames
    ref = reference(xl, fields, unet_file=unet_file, scheduler="EulerDiscreteScheduler", timestep_spacing="trailing")
    assert np.abs(ours.astype(int) - as_uint8(ref)).max() <= 1
    base = xl_renderer.render(spec_from_fields(fields)[0]).frames  # the same clip on the base's own UNet
    assert np.abs(ours.astype(int) - base.astype(int)).max() > 3


def run(tmp_path, clip, *, command="render", defaults=None):
    script = tmp_path / "xl.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {**XL, "outputs": ["png"], **(defaults or {})},
                                      "clips": [{"name": "c1", **clip}]}))
    out = tmp_path / "out"
    args = [command, str(script)] + (["--out", str(out), "--quiet", "--device", "cpu"] if command == "render" else [])
    return CliRunner().invoke(main, args), out


def test_script_renders_resumes_and_takes_the_native_size(tmp_path):
    defaults = {k: None for k in ("width", "height")}
    result, out = run(tmp_path, {"adapters": [XL_LORA]}, defaults=defaults)
    assert result.exit_code == 0, result.output
    frames = sorted((out / "xl" / "c1").glob("frame_*.png"))
    from PIL import Image

    assert len(frames) == 8 and Image.open(frames[0]).size == (64, 64)  # tiny-xl's native size
    stamp = frames[0].stat().st_mtime_ns
    again, _ = run(tmp_path, {"adapters": [XL_LORA]}, defaults=defaults)
    assert again.exit_code == 0, again.output
    assert frames[0].stat().st_mtime_ns == stamp  # done: nothing rendered or written again


# ---------------------------------------------------------------- families that do not mix: one line, exit 2

@pytest.mark.parametrize("clip, fragments", [
    ({"motion_adapter": "tiny-motion"},
     ["motion_adapter", "built for a UNet with 2 blocks of [8, 8] channels", "(SDXL) has 3 blocks", "sdxl-beta"]),
    ({"model": "tiny", "motion_adapter": "tiny-xl-motion"},
     ["motion_adapter", "built for a UNet with 3 blocks", "(SD1.5) has 2 blocks", "animatediff-v1-5-2"]),
    ({"adapters": [{"name": "lcm", "source": "tiny-lcm"}]},
     ["adapters[0] (lcm)", "SD1.5 LoRA", "SDXL model", "lcm-lora-sdxl"]),
    ({"model": "tiny", "motion_adapter": "tiny-motion", "adapters": [XL_LORA]},
     ["adapters[0] (lcm)", "SDXL LoRA", "SD1.5 model", "lcm-lora-sd15"]),
    ({"model": "tiny", "motion_adapter": "tiny-motion", "unet": "tiny-xl-lightning-unet"},
     ["unet", "SDXL UNet", "is SD1.5"]),
], ids=["sd15-adapter-on-sdxl", "sdxl-adapter-on-sd15", "sd15-lora-on-sdxl", "sdxl-lora-on-sd15", "sdxl-unet-on-sd15"])
@pytest.mark.parametrize("command", ["render", "check"])
def test_family_mismatch_is_one_line(tmp_path, xl, clip, fragments, command):
    result, out = run(tmp_path, clip, command=command)
    assert_one_error_line(result, out, "xl.yaml: clip c1", *fragments)


@pytest.mark.parametrize("clip, fragments", [
    ({"prompt": {0: "a fox", 4: "a wolf"}}, ["prompt", "prompt travel", "FreeNoise"]),
    ({"frames": 40}, ["frames: 40", "context windows", "at most 32 frames"]),
    ({"pose": {"source": {0: {"nose": [0.5, 0.5]}}, "controlnet": "tiny"}}, ["pose", "ControlNet", "SDXL"]),
    ({"refine": {"scale": 1.5}}, ["refine", "AnimateDiffVideoToVideoPipeline", "SD1.5 only"]),
], ids=["prompt-travel", "context-windows", "pose", "refine"])
def test_what_the_sdxl_pipeline_cannot_do_is_refused(tmp_path, xl, clip, fragments):
    result, out = run(tmp_path, clip, command="check")
    assert_one_error_line(result, out, "clip c1", *fragments)


# ---------------------------------------------------------------- Lightning warnings, presets, estimates

def test_lightning_off_its_distillation_warns(xl):
    from animate.run.plan import warnings_for

    (good,) = spec_from_fields({**XL, "unet": "tiny-xl-lightning-unet", "scheduler": "lightning-xl", "steps": 2,
                                "guidance": 0.0})
    assert warnings_for(good) == []
    (bad,) = spec_from_fields({**XL, "unet": "tiny-xl-lightning-unet", "scheduler": "euler", "steps": 6,
                               "guidance": 5.0})
    text = " | ".join(warnings_for(bad))
    assert "distilled for 2 steps but the clip uses 6" in text
    assert "expects scheduler lightning-xl" in text and "guidance 5" in text


@pytest.mark.parametrize("steps", [2, 4, 8])
def test_lightning_xl_presets(steps):
    from animate.models.family import base_family, lightning_steps
    from animate.run.plan import warnings_for

    (spec,) = spec_from_fields({"preset": f"lightning-xl-{steps}step", "prompt": "a fox"})
    assert (spec.steps, spec.scheduler, spec.guidance) == (steps, "lightning-xl", 0.0)
    assert spec.unet.weight_name == f"sdxl_lightning_{steps}step_unet.safetensors"
    assert base_family(spec.model) == "sdxl" and (spec.width, spec.height) == (1024, 1024)
    assert lightning_steps(spec) == steps
    assert not [w for w in warnings_for(spec) if "Lightning" in w]
    scheduler = __import__("animate.models.schedulers", fromlist=["x"]).build_scheduler("lightning-xl", {
        "_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear"})
    assert scheduler.config.timestep_spacing == "trailing" and scheduler.config.beta_schedule == "scaled_linear"


def test_lcm_xl_preset():
    (spec,) = spec_from_fields({"preset": "lcm-xl", "prompt": "a fox"})
    (adapter,) = spec.adapters
    assert (adapter.source.ref, adapter.source.weight_name, adapter.kind) == ("latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.safetensors",
                                                "lcm")
    assert spec.motion_adapter.ref == "guoyww/animatediff-motion-adapter-sdxl-beta"


def test_sdxl_estimate_counts_its_weights_and_size():
    from animate.run.plan import estimate

    (sd15,) = spec_from_fields({"preset": "lcm", "model": "epicrealism", "prompt": "a fox"})
    (sdxl,) = spec_from_fields({"preset": "lcm-xl", "prompt": "a fox"})
    _, gib15 = estimate(sd15, "cuda", "fp16")
    seconds, gibxl = estimate(sdxl, "cuda", "fp16")
    assert gibxl > 2.5 * gib15 and gibxl > 12  # SDXL weights plus 4x the pixels of 512x512
    assert estimate(sdxl, "cuda", "fp32")[1] > gibxl


# ---------------------------------------------------------------- family detection

def test_family_from_folders_and_checkpoint_headers(tmp_path, kit, xl):
    from safetensors.torch import save_file

    from animate.models.family import adapter_family, base_family, native_size
    from animate.models.sources import resolve_source

    assert base_family(resolve_source("tiny")) == "sd15" and base_family(resolve_source("tiny-xl")) == "sdxl"
    assert native_size(resolve_source("tiny-xl")) == 64
    assert adapter_family(resolve_source("tiny", slot="motion")) == "sd15"
    assert adapter_family(resolve_source("tiny-xl-motion")) == "sdxl"
    assert base_family(resolve_source("tiny-file")) == "sd15"  # an original-format SD1.5 checkpoint's keys
    sdxl_file = tmp_path / "sdxl-like.safetensors"
    save_file({"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": torch.zeros(1),
               "conditioner.embedders.1.model.ln_final.weight": torch.zeros(1),
               "model.diffusion_model.label_emb.0.0.weight": torch.zeros(1)}, str(sdxl_file))
    assert base_family(resolve_source(str(sdxl_file))) == "sdxl"
    # Hub ids: the registry knows the family where neither the cache nor (offline) the hub can tell.
    assert base_family(resolve_source("sdxl-base")) == "sdxl" and base_family(resolve_source("ssd-1b")) == "sdxl"
    assert base_family(resolve_source("someone/unknown-model")) is None


def test_an_uncached_hub_id_is_judged_from_its_config_where_the_hub_answers(tmp_path, monkeypatch):
    """The family of a hub id nobody has downloaded comes from its model_index.json, fetched from the hub."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from huggingface_hub import constants

    from animate.models import sources as models
    from animate.models.family import base_family, native_size
    from animate.models.sources import Source

    files = {"/someone/xl-like/resolve/main/model_index.json":
             json.dumps({"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "x"]})}

    class Hub(BaseHTTPRequestHandler):
        def _answer(self, body: bool):
            data = files.get(self.path.split("?")[0])
            if data is None:
                self.send_response(404 if self.path != "/" else 200)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            raw = data.encode()
            self.send_response(200)
            self.send_header("X-Repo-Commit", "a" * 40)
            self.send_header("ETag", '"e1"')
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if body:
                self.wfile.write(raw)

        def do_HEAD(self):  # noqa: N802 (http.server's names)
            self._answer(False)

        def do_GET(self):  # noqa: N802
            self._answer(True)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    models._probe.cache_clear()
    try:
        src = Source(ref="someone/xl-like", kind="hub")
        assert base_family(src) == "sdxl" and native_size(src) == 1024
        assert base_family(Source(ref="someone/nothing-there", kind="hub")) is None
    finally:
        server.shutdown()
        server.server_close()
        models._probe.cache_clear()
