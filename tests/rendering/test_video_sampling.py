"""init_video sources are sampled by their real timestamps (PyAV pts), constant or variable frame rate."""
import numpy as np
import pytest
from video_helpers import constant_rate, frame_image, frame_index, write_video

from animate.errors import ConfigError
from animate.spec import spec_from_fields
from animate.rendering.video_input import check, fit_frame, sample


def spec_for(source, tiny_fields, **init):
    return spec_from_fields({**tiny_fields, "frames": 8, "fps": 8.0,
                             "init_video": {"source": str(source), "fit": "stretch", **init}})[0]


def picked(spec):
    frames = sample(spec)
    return frames, [frame_index(im) for im in frames.images]


def test_30fps_source_at_8fps_picks_the_frame_on_screen(tmp_path, tiny_fields):
    source = write_video(tmp_path / "30.mkv", constant_rate(30, 30))
    frames, seen = picked(spec_for(source, tiny_fields))
    # Clip frame i is at i/8 s; the 30 fps frame on screen then is floor(i * 30 / 8).
    expected = [0, 3, 7, 11, 15, 18, 22, 26]
    assert frames.indices == expected and seen == expected
    assert frames.times == pytest.approx([round(k / 30, 3) for k in expected], abs=1e-6)  # MKV keeps ms
    assert frames.record()[3] == {"frame": 3, "source_frame": 11, "source_time": 0.367}


def test_variable_frame_rate_source_uses_its_timestamps(tmp_path, tiny_fields):
    times = [0.0, 0.05, 0.30, 0.31, 0.50, 0.74, 0.76, 0.90, 1.0]
    source = write_video(tmp_path / "vfr.mkv", times)
    frames, seen = picked(spec_for(source, tiny_fields))
    # i/8 s = 0, .125, .25, .375, .5, .625, .75, .875 → the last frame at or before each.
    expected = [0, 1, 1, 3, 4, 4, 5, 6]
    assert frames.indices == expected and seen == expected
    assert frames.times == pytest.approx([times[k] for k in expected])
    # A start offset shifts the clock: 0.125 s + i/8.
    _, seen = picked(spec_for(source, tiny_fields, start=0.125))
    assert seen == [1, 1, 3, 4, 4, 5, 6, 8]


def test_folder_of_frames_runs_at_its_fps(tmp_path, tiny_fields):
    from PIL import Image

    for k in range(20):
        Image.fromarray(frame_image(k, 40, 24)).save(tmp_path / f"f_{k}.png")
    _, seen = picked(spec_for(tmp_path, tiny_fields, fps=16.0))
    assert seen == [0, 2, 4, 6, 8, 10, 12, 14]


def test_short_source_is_refused_in_check(tmp_path, tiny_fields):
    source = write_video(tmp_path / "short.mkv", constant_rate(5, 10), rate=10)  # 0.5 s; the clip needs 0.875 s
    with pytest.raises(ConfigError, match=r"lasts 0\.500s but the clip needs 0\.875s"):
        check(spec_for(source, tiny_fields), "clip")


def test_fits_reuse_the_pose_fit_and_pad_keeps_pixels():
    image = np.arange(60 * 100 * 3, dtype=np.uint32).reshape(60, 100, 3).astype(np.uint8)
    assert fit_frame(image, 48, 32, "stretch").shape == (32, 48, 3)
    contain = fit_frame(image, 48, 48, "contain")
    assert (contain[:9] == 0).all()  # letterboxed, as pose sources are
    padded = fit_frame(image, 104, 64, "pad")
    assert (padded[2:62, 2:102] == image).all() and (padded[0, 2:102] == image[0]).all()


def test_spec_round_trip_and_render_key_follow_the_source(tmp_path, tiny_fields):
    from animate.run.jobs import render_key
    from animate.spec import ClipSpec
    from animate.spec.resolved import InitVideo, Refine

    source = write_video(tmp_path / "a.mkv", constant_rate(10, 8))
    spec = spec_from_fields({**tiny_fields, "init_video": {"source": str(source)},
                             "refine": {"scale": 2.0}})[0]
    assert ClipSpec.from_dict(spec.to_dict()) == spec
    assert spec.init_video == InitVideo(source=str(source), strength=0.6, fps=None, start=0.0, fit="contain",
                                        enforce_inference_steps=True)
    assert spec.refine == Refine(scale=2.0, strength=0.4, steps=None)
    before = render_key(spec, "fp32")
    write_video(source, constant_rate(10, 8), width=42)  # same path, other bytes
    assert render_key(spec, "fp32") != before


@pytest.mark.parametrize("fields,message", [
    ({"loop": True}, "cannot be combined with loop"),
    ({"free_init": {"iters": 2}}, "cannot be combined with free_init"),
    ({"context": {"noise": "repeat_context"}}, "repeat_context"),
    ({"steps": 2, "init_video": {"strength": 0.4, "enforce_inference_steps": False}}, "runs no denoising step"),
    ({"steps": 8, "init_video": {"strength": 0.1}}, "need a 80-step schedule"),  # LCM stops at 50
])
def test_check_refuses_what_video_to_video_cannot_do(tmp_path, tiny_fields, fields, message):
    source = write_video(tmp_path / "a.mkv", constant_rate(10, 8))
    init = {"source": str(source), **fields.pop("init_video", {})}
    spec = spec_from_fields({**tiny_fields, **fields, "init_video": init})[0]
    with pytest.raises(ConfigError, match=message):
        check(spec, "clip")


def test_missing_source_is_one_line(tiny_fields):
    with pytest.raises(ConfigError, match="init_video.source: no such file or folder"):
        spec_from_fields({**tiny_fields, "init_video": {"source": "nope.mp4"}})


def test_check_reports_the_passes_and_refuses_a_short_source(tmp_path):
    import yaml
    from click.testing import CliRunner

    from animate.cli import main

    write_video(tmp_path / "shot.mkv", constant_rate(16, 8), rate=8)
    clip = {"name": "a", "preset": "tiny", "prompt": "ink", "frames": 8, "steps": 4,
            "init_video": {"source": "shot.mkv", "strength": 0.5, "enforce_inference_steps": False},
            "refine": {"scale": 2.0, "strength": 0.5}}
    script = tmp_path / "edit.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "clips": [clip]}))
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "strength 0.5 → 2 denoising steps; refine at 128x128, strength 0.5 → 2 denoising steps" in result.output
    script.write_text(yaml.safe_dump({"version": 1, "clips": [{**clip, "frames": 24}]}))
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 2 and "lasts 2.000s but the clip needs 2.875s" in result.output
