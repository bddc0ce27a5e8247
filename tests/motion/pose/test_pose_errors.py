"""Bad pose sources fail with one clear line naming the source, the problem and the fix."""
import json

import numpy as np
import pytest

from motion.errors import PoseSourceError
from motion.pose import count_frames, detect_kind, pose_frames
from pose_helpers import person, write_openpose

ARGS = dict(frames=4, fps=8, width=64, height=64)


def fails(source, match, **kw):
    with pytest.raises(PoseSourceError) as info:
        pose_frames(source, **{**ARGS, **kw})
    line = str(info.value)
    assert match in line, line
    assert "\n" not in line
    return line


def test_json_without_people(tmp_path):
    src = write_openpose(tmp_path / "empty.json", [[], [], [], []], canvas=(64, 64))
    line = fails(src, "no people in any of its 4 frame(s)", cache_dir=tmp_path)
    assert str(src) in line


def test_json_list_shorter_than_clip(tmp_path):
    frame = [person(nose=(5, 5, 1))]
    src = write_openpose(tmp_path / "short.json", [frame] * 3, canvas=(64, 64))
    assert count_frames(src) == 3
    fails(src, "has 3 frames but the clip has 4; give 4 frames, or set the pose `source_fps`",
          cache_dir=tmp_path)


def test_json_bad_length_and_unknown_canvas(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3, 4, 5, 6]}]}))
    fails(bad, "has 6 numbers, expected 54 (COCO-18) or 75 (BODY_25)", cache_dir=tmp_path)
    pixels = write_openpose(tmp_path / "pixels.json", [[person(nose=(300, 200, 1))]])
    fails(pixels, "set the pose `canvas: [width, height]`", cache_dir=tmp_path)
    not_json = tmp_path / "x.json"
    not_json.write_text("{people: ")
    fails(not_json, "not readable JSON", cache_dir=tmp_path)


def test_json_folder_per_frame(tmp_path):
    folder = tmp_path / "json"
    folder.mkdir()
    for i in (10, 2, 1, 3):  # natural order: 1, 2, 3, 10
        (folder / f"clip_{i:d}_keypoints.json").write_text(json.dumps(
            {"people": [{"pose_keypoints_2d": person(nose=(i / 16, 0.5, 1))}]}))
    assert detect_kind(folder) == "openpose-json" and count_frames(folder) == 4
    frames = pose_frames(folder, **ARGS, cache_dir=tmp_path / "c")  # 0-1 coordinates: fractions
    xs = [int(np.argwhere(f.max(axis=-1) > 0)[:, 1].mean()) for f in frames]
    assert xs == [4, 8, 12, 40]


def test_unreadable_video(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"this is not a video" * 10)
    line = fails(video, "cannot read video", kind="skeleton", cache_dir=tmp_path)
    assert str(video) in line and "ffmpeg" in line


def test_missing_source_unknown_kind_and_option(tmp_path):
    fails(tmp_path / "nope.mp4", "does not exist")
    src = write_openpose(tmp_path / "one.json", [[person(nose=(5, 5, 1))]], canvas=(64, 64))
    fails(src, "kind 'dance' is not one of skeleton, openpose-json, keyframes, person-video", kind="dance")
    fails(src, "unknown pose option(s) smoothing", smoothing=True, cache_dir=tmp_path)
    fails(src, "fit 'fill' is not one of", fit="fill", cache_dir=tmp_path)
    fails({0: {"nose": [0, 0]}}, "kind skeleton needs a path", kind="skeleton")
