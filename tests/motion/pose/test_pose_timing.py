"""Time-based sampling of per-frame sources and videos onto the clip's frames."""
import numpy as np
import pytest
from PIL import Image

from motion.errors import PoseSourceError
from motion.pose import count_frames, pose_frames
from motion.pose.timing import source_indices
from pose_helpers import write_video

# 16 clip frames at 8 fps from a 10-frame source at 5 fps: round(i * 5 / 8), halves going up.
EXPECTED = [0, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 9]


def skeleton_folder(folder, count=10, size=64):
    folder.mkdir()
    for i in range(count):  # frame i is a flat grey of level 20 * i + 10, so it can be read back
        Image.fromarray(np.full((size, size, 3), 20 * i + 10, np.uint8)).save(folder / f"pose_{i}.png")
    return folder


def test_indices_by_time():
    assert source_indices(16, 8, 10, 5) == EXPECTED
    assert source_indices(4, 8, 30, 24) == [0, 3, 6, 9]
    assert source_indices(6, 8, 1, None) == [0] * 6  # a still pose
    assert source_indices(5, 8, 5, None) == [0, 1, 2, 3, 4]
    assert source_indices(6, 8, 4, 8, overrun="hold") == [0, 1, 2, 3, 3, 3]
    assert source_indices(6, 8, 4, 8, overrun="loop") == [0, 1, 2, 3, 0, 1]


def test_skeleton_folder_resampled(tmp_path):
    folder = skeleton_folder(tmp_path / "poses")
    assert count_frames(folder) == 10
    frames = pose_frames(folder, frames=16, fps=8, width=64, height=64, source_fps=5,
                         cache_dir=tmp_path / "cache")
    assert [int(f[0, 0, 0] - 10) // 20 for f in frames] == EXPECTED


def test_count_mismatch_without_source_fps(tmp_path):
    folder = skeleton_folder(tmp_path / "poses")
    with pytest.raises(PoseSourceError) as info:
        pose_frames(folder, frames=16, fps=8, width=64, height=64, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "has 10 frames but the clip has 16" in msg and "source_fps" in msg and "\n" not in msg


def test_source_too_short(tmp_path):
    folder = skeleton_folder(tmp_path / "poses", count=4)
    with pytest.raises(PoseSourceError, match=r"lasts 0.50s .* clip lasts 2.00s"):
        pose_frames(folder, frames=16, fps=8, width=64, height=64, source_fps=8, cache_dir=tmp_path)
    held = pose_frames(folder, frames=16, fps=8, width=64, height=64, source_fps=8, overrun="hold",
                       cache_dir=tmp_path)
    assert int(held[-1][0, 0, 0]) == 70


def test_skeleton_video_sampled_by_its_fps(tmp_path):
    images = [np.full((64, 64, 3), 0, np.uint8) for _ in range(24)]
    for i, im in enumerate(images):  # a white bar whose x position tells the frame
        im[20:40, 2 * i: 2 * i + 2] = 255
    video = write_video(tmp_path / "skel.mp4", images, fps=24)
    assert count_frames(video) == 24
    frames = pose_frames(video, frames=8, fps=8, width=64, height=64, cache_dir=tmp_path / "c")
    found = [int(np.argmax(f[30, :, 0] > 128)) // 2 for f in frames]
    assert found == [0, 3, 6, 9, 12, 15, 18, 21]
