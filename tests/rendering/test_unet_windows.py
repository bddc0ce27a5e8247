"""Context windows blended on the UNet's output (`context.blend: unet`, auto from 128 frames): the UNet sees one
window at a time, the frames equal a hand-written per-window blend around diffusers' own pipeline, and clips
blended in the motion modules keep their render keys; FreeNoise blocks take the plain path on one window."""
import numpy as np
import pytest
import torch

from animate.run.jobs import render_key, spec_record
from animate.spec import ClipSpec, spec_from_fields
from motion.context import UNET_FROM_FRAMES, context_plan

FIELDS = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=2, guidance=1.5, width=32, height=32,
              seed=5, prompt="a red fox in snow", negative="blurry")
CONTEXT = {"length": 8, "overlap": 3, "weighting": "pyramid"}


def spec(frames=20, **context):
    return spec_from_fields({**FIELDS, "frames": frames, "context": {**CONTEXT, **context}})[0]


def hand_blended(unet, windows, weights):
    """A UNet forward that denoises each window and averages the predictions with `weights` per frame."""
    from diffusers.models.unets.unet_motion_model import UNetMotionOutput

    inner = unet.forward

    def forward(sample, timestep, encoder_hidden_states, **kwargs):
        frames = sample.shape[2]
        total, count = torch.zeros_like(sample), torch.zeros(frames)
        per_frame = encoder_hidden_states.unflatten(0, (-1, frames))
        for start, end in windows:
            kwargs["return_dict"] = True
            pred = inner(sample[:, :, start:end], timestep, encoder_hidden_states=per_frame[:, start:end].flatten(0, 1),
                         **kwargs).sample
            total[:, :, start:end] += pred * weights.view(1, 1, -1, 1, 1)
            count[start:end] += weights
        return UNetMotionOutput(sample=total / count.view(1, 1, -1, 1, 1))

    return forward


def test_unet_blend_equals_diffusers_with_a_hand_blended_unet(kit, renderer):
    from diffusers import AnimateDiffPipeline, LCMScheduler, MotionAdapter

    clip = spec(blend="unet")
    result = renderer.render(clip, keep_float=True)
    assert result.info["context"]["blend"] == "unet"
    windows = [tuple(w) for w in result.info["context"]["windows"]]
    assert windows == [(0, 8), (5, 13), (10, 18), (12, 20)]

    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    pipe = AnimateDiffPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_free_noise(context_length=8, context_stride=5)  # the clip's noise and per-frame prompts
    pipe.unet.forward = hand_blended(pipe.unet, windows, torch.tensor([1., 2, 3, 4, 4, 3, 2, 1]))
    ref = pipe(prompt=FIELDS["prompt"], negative_prompt=FIELDS["negative"], num_frames=20, height=32, width=32,
               num_inference_steps=2, guidance_scale=1.5, generator=torch.Generator("cpu").manual_seed(5),
               output_type="np").frames[0]
    pixels = lambda f: (np.clip(f, 0, 1) * 255).round().astype(int)  # noqa: E731
    assert np.abs(pixels(result.float_frames) - pixels(ref)).max() <= 1
    motion = renderer.render(spec(blend="motion"), keep_float=True)
    assert np.abs(motion.float_frames - result.float_frames).max() > 1e-3  # the two blends differ


def test_the_unet_sees_one_window_at_a_time(renderer):
    seen = []
    unet = renderer.stack_for(spec()).pipe.unet
    hook = unet.conv_in.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    try:
        renderer.render(spec(frames=40, blend="unet"))
        windowed, seen[:] = set(seen), []
        renderer.render(spec(frames=40, blend="motion"))
        whole = set(seen)
    finally:
        hook.remove()
    assert windowed == {2 * 8}  # CFG's two halves × one 8-frame window
    assert whole == {2 * 40}  # FreeNoise: the whole clip through every layer


def test_auto_blends_in_the_unet_from_128_frames():
    assert UNET_FROM_FRAMES == 128
    assert context_plan(127, 32).blend == "motion" and context_plan(128, 32).blend == "unet"
    assert context_plan(1024, 32, blend="motion").blend == "motion"
    assert context_plan(20, 32, length=8, blend="unet").blend == "unet"
    from animate.run.plan import context_report

    report = context_report(spec(frames=128, blend="auto"))
    assert report["blend"] == "unet" and "whole UNet a window at a time" in report["text"]
    assert not report["split_inference"]  # a UNet that sees one window needs no split
    assert context_report(spec(frames=64, blend="motion"))["split_inference"]


def test_motion_blended_clips_keep_their_render_keys_and_records():
    short_auto, short_motion, short_unet = spec(blend="auto"), spec(blend="motion"), spec(blend="unet")
    assert render_key(short_auto, "fp32") == render_key(short_motion, "fp32") != render_key(short_unet, "fp32")
    assert "blend" not in spec_record(short_auto)["context"]
    assert spec_record(short_unet)["context"]["blend"] == "unet"
    long_auto, long_unet, long_motion = spec(128, blend="auto"), spec(128, blend="unet"), spec(128, blend="motion")
    assert render_key(long_auto, "fp32") == render_key(long_unet, "fp32") != render_key(long_motion, "fp32")
    # A record without `blend` (older, or blended in the motion modules) reads back as the motion blend.
    read = lambda clip: ClipSpec.from_dict({"script": "", **spec_record(clip)})  # noqa: E731  as replay does
    assert read(long_motion).context.blend == "motion" and read(long_auto).context.blend == "unet"
    assert ClipSpec.from_dict(short_auto.to_dict()) == short_auto  # the in-memory form round-trips exactly


def test_one_window_free_noise_blocks_run_the_plain_block():
    from diffusers.models.attention import BasicTransformerBlock, FreeNoiseTransformerBlock

    from motion.freenoise import install_one_window_path

    torch.manual_seed(0)
    kw = dict(dim=16, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=12,
              positional_embeddings="sinusoidal", num_positional_embeddings=32)
    plain = BasicTransformerBlock(**kw).eval()
    free = FreeNoiseTransformerBlock(**kw, context_length=8, context_stride=3).eval()
    free.load_state_dict(plain.state_dict())
    holder = torch.nn.Sequential(free)
    assert install_one_window_path(holder) == 1 and install_one_window_path(holder) == 0  # once
    x, text = torch.randn(6, 8, 16), torch.randn(6, 5, 12)
    with torch.no_grad():
        fast = free(x, encoder_hidden_states=text)
        assert torch.equal(fast, plain(x, encoder_hidden_states=text))  # exactly diffusers without FreeNoise
        diffusers_own = FreeNoiseTransformerBlock.forward(free, x, encoder_hidden_states=text)
        assert (fast - diffusers_own).abs().max() < 1e-5  # its x·w/w rounding
        longer = torch.randn(6, 14, 16)  # two windows: diffusers' own forward, untouched
        assert torch.equal(free(longer, encoder_hidden_states=text),
                           FreeNoiseTransformerBlock.forward(free, longer, encoder_hidden_states=text))


@pytest.mark.parametrize("options", [{}, {"pingpong": True, "metadata": '{"clip":"a"}'}])
def test_webp_frames_made_on_demand_give_the_same_file(tmp_path, options):
    from PIL import Image

    from animate.encode import encode
    from animate.encode.webp import ms_delays

    frames = np.random.default_rng(1).integers(0, 256, (5, 12, 20, 3), dtype=np.uint8)
    path = encode("webp", frames, tmp_path / "a.webp", fps=8, **options)
    sequence = list(frames) + (list(frames[-2:0:-1]) if options.get("pingpong") else [])
    images = [Image.fromarray(f) for f in sequence]
    extra = {}
    if options.get("metadata"):
        exif = Image.Exif()
        exif[0x010E] = options["metadata"]
        extra["exif"] = exif.tobytes()
    images[0].save(tmp_path / "b.webp", format="WEBP", save_all=True, append_images=images[1:],
                   duration=ms_delays(len(sequence), 8), loop=0, quality=90, lossless=False, method=4,
                   minimize_size=False, **extra)
    assert path.read_bytes() == (tmp_path / "b.webp").read_bytes()


def test_frame_store_writes_what_numpy_reads(tmp_path):
    from animate.outputs.framestore import FrameStore

    store = FrameStore(tmp_path)
    frames = np.random.default_rng(2).integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    store.save("a" * 32, frames[:, :, ::-1], {"clip": "x"})  # not contiguous: still one frame at a time
    assert np.array_equal(store.load("a" * 32), frames[:, :, ::-1])
    with np.load(store.path("a" * 32)) as data:
        assert str(data["meta"]) == '{"clip": "x"}'


def test_one_prompt_reaches_the_windows_as_one_embedding_per_batch_entry(renderer):
    def embeddings(clip):
        pipe, kwargs, _ = renderer.pipeline_call(clip)
        with torch.inference_mode():
            return pipe._encode_prompt_free_noise(kwargs["prompt"], clip.frames, "cpu", 1, True,
                                                  kwargs["negative_prompt"])[0], pipe

    compact, pipe = embeddings(spec(blend="unet"))
    assert compact.shape[0] == 2  # CFG's two halves, not 2 × 20 frames
    travel = spec_from_fields({**FIELDS, "frames": 20, "prompt": {0: "a fox", 10: "a wolf"},
                               "context": {**CONTEXT, "blend": "unet"}})[0]
    assert embeddings(travel)[0].shape[0] == 2 * 20  # travel keeps diffusers' per-frame embeddings
    assert renderer.render(travel).frames.shape == (20, 32, 32, 3)
    embeddings(spec(blend="motion"))
    assert "_encode_prompt_free_noise" not in vars(pipe)  # diffusers' own method for the next clip


def test_a_pose_controlnet_runs_window_by_window_with_the_same_frames(renderer, tmp_path, monkeypatch):
    """Under the UNet blend the ControlNet is called per window (its full-clip residuals would hold feature maps
    of every frame at every down-path resolution); being 2D, it gives each frame the same residuals either way."""
    import motion.unet_windows as unet_windows
    from tests.rendering.test_render_pose import skeleton_frames

    clip = spec_from_fields({**FIELDS, "frames": 20, "context": {**CONTEXT, "blend": "unet"},
                             "pose": {"source": str(tmp_path), "controlnet": "tiny", "scale": 0.8}})[0]
    cond = skeleton_frames(20, 32)
    seen = []

    def watch(module, args):
        seen.append(args[0].shape[0])

    windowed = renderer.render(clip, pose_frames=cond, keep_float=True)
    pipe = renderer.pipeline_call(clip, pose_frames=cond)[0]
    controlnet = pipe.controlnet
    hook = controlnet.conv_in.register_forward_pre_hook(watch)
    try:
        renderer.render(clip, pose_frames=cond)
        per_window, seen[:] = set(seen), []
        monkeypatch.setattr(unet_windows, "can_defer", lambda net: False)  # the ControlNet on the whole clip
        whole = renderer.render(clip, pose_frames=cond, keep_float=True)
        whole_calls = set(seen)
    finally:
        hook.remove()
    assert per_window == {2 * 8}  # CFG's two halves × one 8-frame window
    assert whole_calls == {2 * 20}
    assert windowed.info["context"]["blend"] == "unet"
    assert np.abs(windowed.float_frames - whole.float_frames).max() <= 1e-5


def test_a_controlnet_called_whole_under_the_unet_blend_gets_per_frame_prompts(renderer, tmp_path):
    """Offload hooks taken after a pose clip was set up (the memory ladder) make the ControlNet run whole: the
    one-per-batch-entry prompt embedding it was set up with goes back to one per frame, same frames."""
    from tests.rendering.test_render_pose import skeleton_frames

    clip = spec_from_fields({**FIELDS, "frames": 20, "context": {**CONTEXT, "blend": "unet"},
                             "pose": {"source": str(tmp_path), "controlnet": "tiny", "scale": 0.8}})[0]
    cond = skeleton_frames(20, 32)
    outputs = []
    for hooked in (False, True):
        pipe, kwargs, _ = renderer.pipeline_call(clip, pose_frames=cond)
        kwargs = {**kwargs, "output_type": "latent", "callback_on_step_end": None,
                  "generator": torch.Generator("cpu").manual_seed(clip.seed)}
        seen = []
        hook = pipe.controlnet.conv_in.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
        if hooked:
            vars(pipe.controlnet)["_hf_hook"] = object()  # what accelerate's add_hook_to_module sets
        try:
            with torch.inference_mode():
                outputs.append(pipe(**kwargs).frames)
        finally:
            hook.remove()
            vars(pipe.controlnet).pop("_hf_hook", None)
        assert set(seen) == ({2 * 20} if hooked else {2 * 8})
    assert torch.abs(outputs[0] - outputs[1]).max() <= 1e-5
