"""check_output: every option value a writer refuses is refused up front, from fps, frame count and size
alone, with the same one-line message the writer gives; good values pass; no option goes unchecked."""
from __future__ import annotations

import numpy as np
import pytest

from animate.encode import FORMATS, check_output, encode
from animate.errors import EncodeError

CLIP = {"fps": 8, "frames": 4, "width": 8, "height": 8}

# (format, options, clip changes, where, fragments the message must hold: the bad value and the fix)
BAD = [
    # every format: unknown format and key, interpolate, metadata
    ("avi", {}, {}, "outputs.avi", ["'avi'", "valid formats: ffv1, gif, mp4"]),
    ("gfi", {}, {}, "outputs.gfi", ["'gfi'", "did you mean `gif`?"]),
    ("gif", {"qualty": 80}, {}, "outputs.gif.qualty", ["'qualty'", "did you mean `quality`?", "valid options:"]),
    ("webm", {"target": "x"}, {}, "outputs.webm.target", ["'target'", "valid options: crf, interpolate, metadata"]),
    ("gif", {"interpolate": 0}, {}, "outputs.gif.interpolate", ["got 0", "[1, 8]"]),
    ("ffv1", {"interpolate": 9}, {}, "outputs.ffv1.interpolate", ["got 9", "[1, 8]"]),
    ("mp4", {"interpolate": 2.0}, {}, "outputs.mp4.interpolate", ["got 2.0", "integer"]),
    ("png", {"metadata": {"a": 1}}, {}, "outputs.png.metadata", ["dict {'a': 1}", "string"]),
    # gif
    ("gif", {"quality": 500}, {}, "outputs.gif.quality", ["got 500", "[1, 100]"]),
    ("gif", {"quality": 0}, {}, "outputs.gif.quality", ["got 0", "[1, 100]"]),
    ("gif", {"quality": "85"}, {}, "outputs.gif.quality", ["got '85'", "[1, 100]"]),
    ("gif", {"loop": -1}, {}, "outputs.gif.loop", ["got -1", "[0, 65535]", "false (play once)"]),
    ("gif", {"loop": 65536}, {}, "outputs.gif.loop", ["got 65536", "[0, 65535]"]),
    ("gif", {"loop": True}, {}, "outputs.gif.loop", ["got True", "[0, 65535]"]),
    ("gif", {"pingpong": "no"}, {}, "outputs.gif.pingpong", ["got 'no'", "true or false"]),
    ("gif", {"denoise": 1}, {}, "outputs.gif.denoise", ["got 1", "true or false"]),
    ("gif", {"engine": "gifsky"}, {}, "outputs.gif.engine", ["got 'gifsky'", "animate, gifski", "`gifski`"]),
    ("gif", {"target": "discrod"}, {}, "outputs.gif.target",
     ["'discrod'", "did you mean `discord`?", "valid targets: discord, discord-emoji, reddit, slack-emoji, x"]),
    ("gif", {"target": "reels"}, {}, "outputs.gif.target", ["'reels'", "valid targets: discord,"]),
    ("gif", {"max_bytes": 0}, {}, "outputs.gif.max_bytes", ["got 0", "[1, "]),
    ("gif", {"max_bytes": 1.5e6}, {}, "outputs.gif.max_bytes", ["got 1500000.0", "integer"]),
    ("gif", {}, {"fps": 60}, "outputs.gif.fps", ["fps 60", "50 fps", "use fps ≤ 50"]),
    ("gif", {"interpolate": 2}, {"fps": 30}, "outputs.gif.interpolate",
     ["fps 60 (30 fps × interpolate 2)", "50 fps", "fps × interpolate ≤ 50"]),
    ("gif", {"interpolate": 2}, {"fps": 60}, "outputs.gif.fps", ["fps 120 (60 fps × interpolate 2)", "50 fps"]),
    ("gif", {}, {"fps": 0.001}, "outputs.gif.fps", ["fps 0.001", "655.35 s", "fps ≥ 0.0016"]),
    ("gif", {}, {"width": 65536}, "outputs.gif.width", ["65536×8", "65535×65535"]),
    # mp4
    ("mp4", {"crf": 52}, {}, "outputs.mp4.crf", ["got 52", "[0, 51]"]),
    ("mp4", {"crf": -1}, {}, "outputs.mp4.crf", ["got -1", "[0, 51]"]),
    ("mp4", {"preset": "fastest"}, {}, "outputs.mp4.preset", ["got 'fastest'", "ultrafast,", "veryslow"]),
    ("mp4", {"tune": "anime"}, {}, "outputs.mp4.tune", ["got 'anime'", "film, animation"]),
    ("mp4", {"fps_mode": "blend"}, {}, "outputs.mp4.fps_mode", ["got 'blend'", "interpolate, duplicate"]),
    ("mp4", {"target": "instagram"}, {}, "outputs.mp4.target", ["'instagram'", "valid targets: reels, shorts"]),
    ("mp4", {"target": "discord"}, {}, "outputs.mp4.target", ["'discord'", "valid targets: reels,"]),
    ("mp4", {"target": ["x"]}, {}, "outputs.mp4.target", ["['x']", "valid targets:"]),
    ("mp4", {"max_bytes": -5}, {}, "outputs.mp4.max_bytes", ["got -5", "[1, "]),
    ("mp4", {"target": "reels"}, {"fps": 120}, "outputs.mp4.fps", ["fps 120", "limit of 60", "≤ 60 fps"]),
    ("mp4", {"target": "reels", "interpolate": 2}, {"fps": 40}, "outputs.mp4.interpolate",
     ["fps 80 (40 fps × interpolate 2)", "limit of 60", "fps × interpolate ≤ 60"]),
    ("mp4", {"target": "reels"}, {"fps": 1, "frames": 100}, "outputs.mp4.target",
     ["100.0 s", "limit of 90 s", "tiktok (600 s)", "shorts (180 s)"]),
    ("mp4", {"target": "shorts", "fps_mode": "duplicate"}, {"fps": 8, "frames": 8 * 200}, "outputs.mp4.target",
     ["200.0 s", "limit of 180 s", "tiktok (600 s)"]),
    # webm, webp
    ("webm", {"crf": 64}, {}, "outputs.webm.crf", ["got 64", "[0, 63]"]),
    ("webp", {"quality": 101}, {}, "outputs.webp.quality", ["got 101", "[0, 100]"]),
    ("webp", {"lossless": "yes"}, {}, "outputs.webp.lossless", ["got 'yes'", "true or false"]),
    ("webp", {"loop": -1}, {}, "outputs.webp.loop", ["got -1", "[0, 65535]"]),
    ("webp", {"pingpong": "yes"}, {}, "outputs.webp.pingpong", ["got 'yes'", "true or false"]),
    ("webp", {"metadata": "prompt: ünïcode"}, {}, "outputs.webp.metadata", ["'prompt: ünïcode'", "ASCII text or JSON"]),
    ("webp", {}, {"height": 16384}, "outputs.webp.height", ["8×16384", "16383×16383"]),
    # png, prores, sheet
    ("png", {"bits": 12}, {}, "outputs.png.bits", ["got 12", "8, 16"]),
    ("png", {"compress_level": 10}, {}, "outputs.png.compress_level", ["got 10", "[0, 9]"]),
    ("prores", {"profile": "lt"}, {}, "outputs.prores.profile", ["got 'lt'", "hq, 4444"]),
    ("sheet", {"columns": 0}, {}, "outputs.sheet.columns", ["got 0", "[1, 1000]"]),
    ("sheet", {"max_width": 15}, {}, "outputs.sheet.max_width", ["got 15", "[16, 65536]"]),
    ("sheet", {"gap": 65}, {}, "outputs.sheet.gap", ["got 65", "[0, 64]"]),
    ("sheet", {"every": 0}, {}, "outputs.sheet.every", ["got 0", "[1, 10000]"]),
]

# One value per (format, option) that must pass, besides the defaults; the clip changes go with it.
GOOD = {
    "gif": {"quality": [1, 100], "loop": [None, False, 3, 65535], "pingpong": [True], "denoise": [True],
            "engine": ["animate"], "target": ["x", "discord-emoji"], "max_bytes": [1000],
            "metadata": ['{"a":1}'], "interpolate": [2, 6]},
    "mp4": {"crf": [0, 51], "preset": ["ultrafast"], "tune": ["animation", None], "target": ["reels", "tiktok"],
            "fps_mode": ["duplicate"], "max_bytes": [10 ** 6], "metadata": ["{}"], "interpolate": [8]},
    "webm": {"crf": [0, 63], "metadata": ["x"], "interpolate": [8]},
    "webp": {"quality": [0, 100], "lossless": [True], "loop": [5], "metadata": ['{"p":"ünï"}', "ascii"],
             "interpolate": [3], "pingpong": [True]},
    "png": {"bits": [16], "compress_level": [0, 9], "metadata": ["{}"], "interpolate": [2]},
    "prores": {"profile": ["4444", 4444], "metadata": ["{}"], "interpolate": [2]},
    "ffv1": {"metadata": ["{}"], "interpolate": [2]},
    "sheet": {"columns": [3, None], "max_width": [16], "gap": [0], "every": [2], "metadata": ["{}"],
              "interpolate": [2]},
}

NONSENSE = [7, 7]  # no option takes a list: each rule must refuse it


def frames_for(clip: dict) -> np.ndarray:
    return np.zeros((clip["frames"], clip["height"], clip["width"], 3), np.uint8)


@pytest.fixture
def no_work(monkeypatch):
    """Writers that would start encoding or interpolating fail the test: refusals must come first."""
    import animate.encode.interpolate

    def started(*args, **kwargs):
        raise AssertionError("the writer started work before refusing")

    monkeypatch.setattr(animate.encode.interpolate, "interpolate", started)
    for module in ("gif", "video", "webp", "frames"):
        monkeypatch.setattr(f"animate.encode.{module}.atomic_file", started)
    monkeypatch.setattr("animate.encode.frames.atomic_dir", started)


def refused_up_front(fmt, options, clip) -> EncodeError:
    with pytest.raises(EncodeError) as err:
        check_output(fmt, options, **clip)
    return err.value


def refused_by_writer(fmt, options, clip, tmp_path) -> EncodeError:
    with pytest.raises(EncodeError) as err:
        encode(fmt, frames_for(clip), tmp_path / "bad", fps=clip["fps"], **options)
    assert list(tmp_path.iterdir()) == []
    return err.value


@pytest.mark.parametrize("fmt,options,change,where,fragments", BAD,
                         ids=[f"{f}-{'-'.join(map(str, {**o, **c}.items())) or 'format'}" for f, o, c, *_ in BAD])
def test_bad_value_refused_up_front_and_by_writer(fmt, options, change, where, fragments, tmp_path, no_work):
    clip = {**CLIP, **change}
    up_front = refused_up_front(fmt, options, clip)
    assert up_front.where == where
    line = str(up_front)
    assert "\n" not in line and line.startswith(where + ": ")
    for fragment in fragments:
        assert fragment in line
    assert str(refused_by_writer(fmt, options, clip, tmp_path)) == line


def test_gifski_engine_needs_the_program(monkeypatch, tmp_path, no_work):
    monkeypatch.setattr("shutil.which", lambda name: None)
    err = refused_up_front("gif", {"engine": "gifski"}, CLIP)
    assert err.where == "outputs.gif.engine" and "gifski program on PATH" in str(err)
    assert str(refused_by_writer("gif", {"engine": "gifski"}, CLIP, tmp_path)) == str(err)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    check_output("gif", {"engine": "gifski"}, **CLIP)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_defaults_pass(fmt):
    check_output(fmt, {}, **CLIP)
    check_output(fmt, None, **CLIP)


@pytest.mark.parametrize("fmt,key,value", [(f, k, v) for f, keys in GOOD.items() for k, vs in keys.items() for v in vs])
def test_good_values_pass(fmt, key, value):
    check_output(fmt, {key: value}, **CLIP)


@pytest.mark.parametrize("fmt,options,clip", [
    ("gif", {}, {"fps": 50}),
    ("gif", {"interpolate": 2}, {"fps": 25}),
    ("gif", {}, {"fps": 0.0016}),
    ("gif", {}, {"width": 65535, "height": 65535}),
    ("gif", {"target": "x"}, {"width": 100_000}),  # the target shrinks it into 1280×1080 first
    ("webp", {}, {"width": 16383, "height": 16383}),
    ("mp4", {"target": "reels"}, {"fps": 60}),
    ("mp4", {"target": "reels", "interpolate": 2}, {"fps": 30}),
    ("mp4", {"target": "reels"}, {"fps": 8, "frames": 8 * 90}),
    ("mp4", {"target": "tiktok"}, {"fps": 1, "frames": 100}),
    ("mp4", {}, {"fps": 240, "frames": 240 * 3600}),  # no target: no fps or duration limit
])
def test_limits_at_the_edge_pass(fmt, options, clip):
    check_output(fmt, options, **{**CLIP, **clip})


def test_every_registered_option_has_a_check(tmp_path, no_work):
    """A new option whose rule accepts anything fails here; so does one missing from GOOD."""
    assert set(GOOD) == set(FORMATS)
    for fmt, spec in FORMATS.items():
        assert set(GOOD[fmt]) == set(spec.options), f"GOOD lacks or has extra options of {fmt}"
        for key in spec.options:
            err = refused_up_front(fmt, {key: NONSENSE}, CLIP)
            assert err.where == f"outputs.{fmt}.{key}", (fmt, key, err.where)
            assert "[7, 7]" in str(err), (fmt, key, str(err))
            assert str(refused_by_writer(fmt, {key: NONSENSE}, CLIP, tmp_path)) == str(err)


def test_clip_shape_and_fps_checked():
    with pytest.raises(EncodeError, match=r"fps must be a number in \(0, 240\], got 0"):
        check_output("mp4", {}, **{**CLIP, "fps": 0})
    with pytest.raises(EncodeError, match="at least 1 frame of at least 1×1 pixels, got 0 frames of 8×8"):
        check_output("gif", {}, **{**CLIP, "frames": 0})
    with pytest.raises(EncodeError, match="got 4 frames of 0×8"):
        check_output("png", {}, **{**CLIP, "width": 0})


def test_good_options_still_encode(tmp_path):
    """The writer takes the checked values: a webp with non-ASCII JSON and a 4444 ProRes from YAML's int."""
    import json

    from animate.encode import read_metadata

    clip = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    path = encode("webp", clip, tmp_path / "w", fps=8, metadata='{"p":"ünï"}', lossless=True)
    assert json.loads(read_metadata(path)) == {"p": "ünï"}
    assert encode("prores", clip, tmp_path / "p", fps=8, profile=4444).stat().st_size > 0
