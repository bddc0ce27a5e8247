"""Long clips: the UNet blend from 128 frames, split inference switched on per clip blended in the motion modules
from motion.context.SPLIT_FROM_FRAMES (and off again for short clips on the shared pipeline), the same frames as without it, the decoded clip written into one uint8
array, and encoders piping frames without a copy."""
import numpy as np
import pytest

import motion.context as context
from animate.rendering.memory import split_active
from animate.spec import spec_from_fields

FIELDS = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=2, guidance=1.5, width=32, height=32,
              seed=11, prompt="a red fox in snow", negative="blurry")


def test_a_long_clip_renders_window_by_window(renderer):
    # 1024 frames at 16x16 (2x2 latents), one step: ~8 s on a shared core. Memory and time at 16-1024 frames
    # and 64x64 are the benchmark's (benchmarks/longclip_bench.py).
    spec = spec_from_fields({**FIELDS, "frames": 1024, "width": 16, "height": 16, "steps": 1, "guidance": 1.0})[0]
    result = renderer.render(spec)
    assert result.frames.shape == (1024, 16, 16, 3) and result.frames.dtype == np.uint8
    assert result.frames.flags.c_contiguous and result.frames.base is None  # one array, not a joined copy
    assert result.info["context"]["blend"] == "unet"  # auto from 128 frames: the UNet sees one window at a time
    assert "split_inference" not in result.info  # which needs no split
    assert len(result.info["context"]["windows"]) == 85  # 16-frame windows, stride 12
    assert result.frames.std() > 0  # not a flat clip
    # Blended in the motion modules, a long clip splits; the next short clip on the shared pipeline does not.
    motion = renderer.render(spec_from_fields({**FIELDS, "frames": 64, "width": 16, "height": 16, "steps": 1,
                                               "context": {"blend": "motion"}})[0])
    assert motion.info["split_inference"] == {"spatial_split_size": 256, "temporal_split_size": 8}
    short = renderer.render(spec_from_fields({**FIELDS, "frames": 8})[0])
    assert "split_inference" not in short.info and not split_active(renderer.stack_for(spec).pipe.unet)


@pytest.mark.parametrize("frames", [24])
def test_split_inference_gives_the_same_frames(renderer, monkeypatch, frames):
    """Split inference computes the same values in pieces: equal within 1e-5 on the decoded floats (the
    batch-split convolutions may round differently) and at most 1/255 on the uint8 frames."""
    spec = spec_from_fields({**FIELDS, "frames": frames, "context": {"length": 8, "overlap": 2}})[0]
    monkeypatch.setattr(context, "SPLIT_FROM_FRAMES", frames + 1)
    plain = renderer.render(spec, keep_float=True)
    monkeypatch.setattr(context, "SPLIT_FROM_FRAMES", frames)
    split = renderer.render(spec, keep_float=True)
    assert "split_inference" in split.info and "split_inference" not in plain.info
    assert np.abs(split.float_frames - plain.float_frames).max() <= 1e-5
    assert np.abs(split.frames.astype(int) - plain.frames.astype(int)).max() <= 1
    assert split.info["context"] == plain.info["context"]


def test_set_split_puts_every_wrapper_on_and_off(renderer):
    """All wrappers diffusers adds come off again (proj_out too), so putting them back never nests them, and
    other sizes re-wrap."""
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule

    from animate.rendering.memory import set_split, split_sizes

    pipe = renderer.stack_for(spec_from_fields({**FIELDS, "frames": 8})[0]).pipe
    wrappers = lambda: sum(isinstance(m, SplitInferenceModule) for m in pipe.unet.modules())  # noqa: E731
    big, small = context.split_sizes(256), context.split_sizes(1024)
    assert big == {"spatial_split_size": 256, "temporal_split_size": 8} and small["spatial_split_size"] == 64
    assert context.split_sizes(63) is None and context.split_sizes(512)["spatial_split_size"] == 128
    set_split(pipe, big)
    on = wrappers()
    set_split(pipe, big)
    assert on > 0 and wrappers() == on and split_sizes(pipe.unet) == big
    set_split(pipe, small)
    assert wrappers() == on and split_sizes(pipe.unet) == small
    set_split(pipe, None)
    assert wrappers() == 0 and split_sizes(pipe.unet) is None
    set_split(pipe, big)
    assert wrappers() == on
    assert not any(isinstance(m.module, SplitInferenceModule) for m in pipe.unet.modules()
                   if isinstance(m, SplitInferenceModule))
    set_split(pipe, None)


def test_encoders_pipe_the_frames_without_a_copy():
    from animate.encode.base import raw_bytes

    frames = np.random.default_rng(0).integers(0, 256, (6, 4, 6, 3), dtype=np.uint8)
    view = raw_bytes(frames)
    assert view.obj is frames and bytes(view) == frames.tobytes()  # a view of the clip's own buffer
    odd = frames[:, :, :5]  # not contiguous: one copy, still the same bytes
    assert bytes(raw_bytes(odd)) == odd.tobytes()


def test_check_says_how_a_long_clip_blends_and_when_it_splits(kit, tmp_path):
    import json

    from click.testing import CliRunner

    from animate.cli import main

    script = tmp_path / "long.json"
    script.write_text(json.dumps({"version": 1, "defaults": {"preset": "tiny"}, "clips": [
        {"name": "long", "prompt": "a fox", "frames": 1024}, {"name": "short", "prompt": "a fox", "frames": 16},
        {"name": "motion", "prompt": "a fox", "frames": 96, "context": {"blend": "motion"}}]}))
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "context:" in ln]
    assert "85 windows of 16" in lines[0] and "the whole UNet a window at a time" in lines[0]
    assert "split inference" not in lines[0] and "split inference" not in lines[1]
    assert "UNet" not in lines[2] and "split inference (from 64 frames)" in lines[2]
