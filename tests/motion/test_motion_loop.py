"""Seamless loops: `loop: true` rolls the latents along the frame axis between steps (motion.context.LoopShift)
so the seam is denoised inside the motion window; every clip's sidecar gets a loop-closure score."""
import numpy as np
import pytest

from animate.spec import spec_from_fields
from motion.context import LoopShift, loop_closure
from tests.rendering.test_render_pose import skeleton_frames

FIELDS = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=3, guidance=1.0, width=32, height=32,
              prompt="a red fox in snow", negative="blurry")


def test_loop_closure_score():
    ramp = np.linspace(0, 1, 9)[:, None, None, None] * np.ones((9, 2, 2, 3))
    assert loop_closure(ramp) == pytest.approx(8.0)  # the seam jumps the whole ramp: 8 neighbour steps
    there_and_back = np.concatenate([ramp, ramp[-2:0:-1]])
    assert loop_closure(there_and_back) == pytest.approx(1.0)  # the seam is one step like the others
    assert loop_closure(np.ones((4, 2, 2, 3))) is None  # a still clip has no motion to compare with


def test_loop_shift_visits_the_seam_and_ends_where_it_started():
    loop = LoopShift(16)
    assert [loop.offset(i, 4) for i in range(4)] == [0, 4, 8, 12]
    shifts = [loop.shift_for(i + 1, 4) for i in range(4)]
    assert shifts == [4, 4, 4, 4] and sum(shifts) % 16 == 0 and loop.current == 0


def smooth(x):
    """A stand-in for what trained motion modules do: pull each frame towards its neighbours in the clip's
    frame order, the first and last frame having one neighbour each (the seam is a window edge)."""
    out = x.copy()
    out[:, :, 1:-1] = (x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]) / 3
    out[:, :, 0] = (x[:, :, 0] + x[:, :, 1]) / 2
    out[:, :, -1] = (x[:, :, -1] + x[:, :, -2]) / 2
    return out


@pytest.mark.parametrize("frames", [16, 24, 48])
def test_shifting_closes_the_seam_for_a_denoiser_that_smooths_neighbours(frames):
    import torch

    rng = np.random.default_rng(frames)
    for trial in range(5):
        start = rng.normal(size=(1, 4, frames, 4, 4))
        plain, looped, loop = start.copy(), start.copy(), LoopShift(frames)
        steps = 8
        for i in range(steps):
            plain = smooth(plain)
            looped = smooth(looped)
            looped = loop.roll_latents(torch.from_numpy(looped), loop.shift_for(i + 1, steps)).numpy()
        as_frames = lambda x: np.moveaxis(x[0], 1, 0)  # noqa: E731 - (C, F, h, w) → (F, C, h, w)
        assert loop_closure(as_frames(looped)) < loop_closure(as_frames(plain)) / 2, trial


def closure_scores(renderer):
    rows = []
    for frames in (16, 24, 48):
        for seed in range(5):
            fields = {**FIELDS, "width": 16, "height": 16, "frames": frames, "seed": seed}
            pair = [renderer.render(spec_from_fields({**fields, "loop": loop})[0]).info["loop_closure"]
                    for loop in (False, True)]
            rows.append((frames, seed, *pair))
    return rows


@pytest.mark.xfail(strict=True, reason="random weights have no temporal coherence to close a loop with: without "
                                       "`loop` the seam scores like any pair of neighbours (0.59-1.29), and "
                                       "`loop` moves it by <= 0.08 either way, lower in 6 of 15 (docs/motion.md)")
def test_loop_lowers_the_closure_score_on_the_tiny_kit(renderer):
    rows = closure_scores(renderer)
    for frames, seed, plain, looped in rows:
        print(f"frames {frames:2d} seed {seed}: loop-closure {plain:.4f} without loop, {looped:.4f} with")
    assert all(looped < plain for _, _, plain, looped in rows)


def test_loop_changes_only_what_it_should(renderer):
    one_step = {**FIELDS, "frames": 16, "seed": 1, "steps": 1}
    plain = renderer.render(spec_from_fields(one_step)[0], keep_float=True).float_frames
    looped = renderer.render(spec_from_fields({**one_step, "loop": True})[0], keep_float=True).float_frames
    assert np.array_equal(plain, looped)  # one step: no shift, and the output is not left rolled
    three = {**FIELDS, "frames": 16, "seed": 1}
    a = renderer.render(spec_from_fields(three)[0], keep_float=True).float_frames
    b = renderer.render(spec_from_fields({**three, "loop": True})[0], keep_float=True).float_frames
    assert np.abs(a - b).max() > 1e-4
    # Frame i of the loop is still frame i: it is closer to the plain clip's frame i than to its neighbours.
    same = np.abs(a - b).mean()
    assert same < np.abs(a - np.roll(b, 4, axis=0)).mean()


@pytest.mark.parametrize("extra", [{"scheduler": "dpm++2m", "steps": 4},  # multistep state rolls too
                                   {"prompt": {0: "a fox", 20: "a hare"}, "frames": 40}])  # travel, windows
def test_loop_renders_with_multistep_schedulers_windows_and_travel(renderer, extra):
    spec = spec_from_fields({**FIELDS, "frames": 16, "seed": 2, "loop": True, **extra})[0]
    result = renderer.render(spec, keep_float=True)
    assert np.isfinite(result.float_frames).all() and result.float_frames.std() > 0.01
    assert result.info["loop_closure"] is not None


def test_loop_with_pose_rolls_the_pose_frames(renderer, tmp_path):
    fields = {**FIELDS, "frames": 6, "guidance": 1.5, "pose": {"source": str(tmp_path), "controlnet": "tiny"}}
    cond = skeleton_frames(6, 32)
    result = renderer.render(spec_from_fields({**fields, "loop": True})[0], pose_frames=cond, keep_float=True)
    plain = renderer.render(spec_from_fields(fields)[0], pose_frames=cond, keep_float=True)
    assert np.abs(result.float_frames - plain.float_frames).max() > 1e-4 and np.isfinite(result.float_frames).all()


def test_webp_pingpong_plays_there_and_back(tmp_path):
    from PIL import Image

    from animate.encode import encode_with_report

    frames = np.stack([np.full((16, 16, 3), v, np.uint8) for v in (0, 80, 160, 240)])
    path, _ = encode_with_report("webp", frames, tmp_path / "p.webp", fps=8, lossless=True, pingpong=True)
    with Image.open(path) as im:
        seen = []
        for i in range(im.n_frames):
            im.seek(i)
            seen.append(int(np.asarray(im.convert("RGB"))[0, 0, 0]))
        assert seen == [0, 80, 160, 240, 160, 80] and im.info.get("loop", 0) == 0
