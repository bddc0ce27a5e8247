"""Every format decoded by an independent decoder: counts, timing, size, codec, colour tags, exactness."""
from __future__ import annotations

import json

import numpy as np
import pytest

from animate.encode import ENCODERS, encode, encode_with_report, extension, read_metadata
from animate.errors import EncodeError
from encode_helpers import decode_av, decode_gif, moving_clip, top_level_atoms

BT709, TV = 1, 1  # FFmpeg enum values: AVCOL_PRI/TRC/SPC_BT709 and AVCOL_RANGE_MPEG


@pytest.fixture(scope="module")
def clip():
    return moving_clip(frames=6, h=33, w=47)  # odd on purpose: formats must pad, never stretch


def test_registry_extensions():
    assert extension("gif") == (".gif", False)
    assert extension("png") == ("", True)
    assert extension("ffv1") == (".mkv", False)
    assert set(ENCODERS) == {"gif", "mp4", "webm", "webp", "png", "prores", "ffv1", "sheet"}


def test_mp4_h264_high_tags_faststart_padding(clip, tmp_path):
    path = encode("mp4", clip, tmp_path / "c", fps=12)
    assert path.name == "c.mp4"
    frames, info = decode_av(path)
    assert (info["codec"], info["profile"], info["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (info["width"], info["height"]) == (48, 34)  # padded by one column and row
    assert len(frames) == 6 and info["fps"] == pytest.approx(12)
    assert (info["primaries"], info["trc"], info["matrix"], info["range"]) == (BT709, BT709, BT709, TV)
    atoms = top_level_atoms(path)
    assert atoms.index("moov") < atoms.index("mdat")
    # Padding, not stretching: the top-left 47×33 matches the input better than a stretched copy would.
    import cv2

    stretched = cv2.resize(clip[0], (48, 34), interpolation=cv2.INTER_LINEAR)[:33, :47]
    err = np.mean(np.abs(frames[0][:33, :47].astype(int) - clip[0]))
    assert err < np.mean(np.abs(stretched.astype(int) - clip[0])) and err < 10


def test_mp4_crf_changes_size(clip, tmp_path):
    small = encode("mp4", clip, tmp_path / "a.mp4", fps=8, crf=40, preset="ultrafast").stat().st_size
    large = encode("mp4", clip, tmp_path / "b.mp4", fps=8, crf=10, preset="ultrafast").stat().st_size
    assert small < large


def test_webm_vp9(clip, tmp_path):
    frames, info = decode_av(encode("webm", clip, tmp_path / "c", fps=8))
    assert info["codec"] == "vp9" and len(frames) == 6 and (info["width"], info["height"]) == (48, 34)
    assert info["fps"] == pytest.approx(8)


# FFmpeg's ProRes decoder reports 4444 as 12-bit whatever the encoder's 10-bit input was.
@pytest.mark.parametrize("profile,pix,name", [("hq", "yuv422p10le", "HQ"), ("4444", "yuv444p12le", "4444")])
def test_prores(clip, tmp_path, profile, pix, name):
    from animate.encode import encode_with_report
    from animate.encode.video import PRORES

    path, report = encode_with_report("prores", clip, tmp_path / "c", fps=24, profile=profile)
    frames, info = decode_av(path)
    # The code's table, the encoder's report and the decoder agree on what the file holds.
    assert PRORES[profile][2] == report["pix_fmt"] == info["pix_fmt"]
    assert path.suffix == ".mov" and info["codec"] == "prores" and info["pix_fmt"] == pix
    assert info["profile"] == name and len(frames) == 6
    assert (info["primaries"], info["trc"], info["matrix"]) == (BT709, BT709, BT709)


def test_ffv1_is_exactly_lossless(clip, tmp_path):
    frames, info = decode_av(encode("ffv1", clip, tmp_path / "c", fps=10))
    assert info["codec"] == "ffv1" and info["fps"] == pytest.approx(10)
    np.testing.assert_array_equal(np.stack(frames), clip)


def test_png_8bit_exact(clip, tmp_path):
    from PIL import Image

    path = encode("png", clip, tmp_path / "seq", fps=8)
    files = sorted(path.iterdir())
    assert [f.name for f in files] == [f"frame_{i:05d}.png" for i in range(6)]
    decoded = np.stack([np.asarray(Image.open(f)) for f in files])
    np.testing.assert_array_equal(decoded, clip)


def test_png_16bit_exact(clip, tmp_path):
    import cv2

    path = encode("png", clip, tmp_path / "seq16", fps=8, bits=16)
    decoded = np.stack([cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
                        for f in sorted(path.iterdir())])
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, clip.astype(np.uint16) * 257)


def test_gif_timing_loop_and_frames(clip, tmp_path):
    frames, durations, info = decode_gif(encode("gif", clip, tmp_path / "c", fps=12))
    assert len(frames) == 6 and info["loop"] == 0
    assert durations == [80, 90, 80, 80, 90, 80]  # 8⅓ cs per frame: ends round to 8, 17, 25, 33, 42, 50
    assert np.mean(np.abs(frames.astype(int) - clip)) < 8


def test_gif_pingpong_loop_count_and_minimum_delay(clip, tmp_path):
    frames, durations, info = decode_gif(encode("gif", clip, tmp_path / "p", fps=50, pingpong=True, loop=3))
    assert len(frames) == 10 and info["loop"] == 3 and set(durations) == {20}
    with pytest.raises(EncodeError, match="50 fps"):
        encode("gif", clip, tmp_path / "fast", fps=60)


def test_gif_play_once_has_no_loop_extension(clip, tmp_path):
    _, _, info = decode_gif(encode("gif", clip, tmp_path / "once", fps=10, loop=None))
    assert "loop" not in info


def test_webp_animated(clip, tmp_path):
    from PIL import Image

    with Image.open(encode("webp", clip, tmp_path / "c", fps=10)) as im:
        assert im.n_frames == 6 and im.info["loop"] == 0 and im.size == (47, 33)
        im.seek(3)
        im.load()
        assert im.info["duration"] == 100


def test_sheet_grid(clip, tmp_path):
    from PIL import Image

    path, report = encode_with_report("sheet", clip, tmp_path / "s", fps=8, columns=4, gap=2)
    with Image.open(path) as im:
        assert im.size == (4 * 47 + 3 * 2, 2 * 33 + 2)
    _, report = encode_with_report("sheet", clip, tmp_path / "t", fps=8, max_width=60)
    assert report["tile"][0] * report["columns"] + 2 * (report["columns"] - 1) <= 60


@pytest.mark.parametrize("fmt", sorted(ENCODERS))
def test_metadata_round_trip(clip, tmp_path, fmt):
    meta = '{"clip":"castle","seed":42,"prompt":"ünïcode ok"}'
    path = encode(fmt, clip[:3], tmp_path / "m", fps=8, metadata=meta)
    if fmt == "webp":  # EXIF text is ASCII: same JSON, escaped
        assert json.loads(read_metadata(path)) == json.loads(meta)
    else:
        assert read_metadata(path) == meta


def test_metadata_independent_readers(clip, tmp_path):
    from PIL import Image

    meta = '{"a":1}'
    with Image.open(encode("gif", clip[:2], tmp_path / "g", fps=8, metadata=meta)) as im:
        assert im.info["comment"] == meta.encode()
    with Image.open(next(encode("png", clip[:2], tmp_path / "p", fps=8, metadata=meta).iterdir())) as im:
        assert im.text["animate"] == meta
    _, info = decode_av(encode("mp4", clip[:2], tmp_path / "v", fps=8, metadata=meta, preset="ultrafast"))
    assert info["metadata"]["comment"] == meta


def test_interpolate_option_on_any_format(clip, tmp_path):
    frames, info = decode_av(encode("ffv1", clip, tmp_path / "i", fps=8, interpolate=2))
    assert len(frames) == 12 and info["fps"] == pytest.approx(16)


@pytest.mark.parametrize("fmt,options,match", [
    ("gif", {"qualty": 80}, "unknown option 'qualty'.*valid options: .*quality"),
    ("mp4", {"crf": 99}, "crf"),
    ("mp4", {"preset": "fastest"}, "preset"),
    ("png", {"bits": 12}, "bits"),
    ("prores", {"profile": "lt"}, "profile"),
    ("gif", {"target": "myspace"}, "unknown target 'myspace'.*discord"),
    ("gif", {"interpolate": 0}, "interpolate"),
])
def test_bad_options_are_one_line_errors(clip, tmp_path, fmt, options, match):
    with pytest.raises(EncodeError, match=match) as err:
        encode(fmt, clip, tmp_path / "bad", fps=8, **options)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_format(tmp_path):
    with pytest.raises(EncodeError, match="uint8"):
        encode("gif", np.zeros((2, 8, 8, 3), np.float32), tmp_path / "x", fps=8)
    with pytest.raises(EncodeError, match="unknown format 'avi'"):
        encode("avi", np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "x", fps=8)


@pytest.mark.parametrize("fmt", ["mp4", "gif", "png", "ffv1"])
def test_failure_leaves_no_file(clip, tmp_path, fmt, monkeypatch):
    import animate.encode.base as base
    import animate.encode.gif as gif

    def boom(*args, **kwargs):
        raise EncodeError("simulated encoder failure")

    monkeypatch.setattr(base, "run_ffmpeg", boom)
    monkeypatch.setattr("animate.encode.video.run_ffmpeg", boom)
    monkeypatch.setattr(gif, "write_gif_file", boom)
    monkeypatch.setattr("animate.encode.frames.write_png16", boom)
    monkeypatch.setattr("PIL.Image.Image.save", lambda *a, **k: boom())
    with pytest.raises(EncodeError, match="simulated"):
        encode(fmt, clip, tmp_path / "out", fps=8, **({"bits": 8} if fmt == "png" else {}))
    assert list(tmp_path.iterdir()) == []
