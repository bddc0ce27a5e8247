"""person-video without the detector: caching, gap filling and smoothing with a stand-in extractor."""

import numpy as np
import pytest

from motion.errors import PoseSourceError
from motion.pose import extract, pose_frames
from motion.pose.draw import COLORS
from motion.pose.keypoints import INDEX, from_mediapipe
from motion.pose.smooth import despike, fill_gaps, one_euro, smooth_track
from pose_helpers import write_video


def landmarks(x, y, vis=0.9):
    """33 MediaPipe landmarks: the nose at (x, y), the shoulders below either side, the rest unseen."""
    lms = [[x, y, 0.0, 0.0] for _ in range(33)]
    lms[0] = [x, y, 0.0, vis]
    lms[11] = [x + 0.1, y + 0.1, 0.0, vis]  # left shoulder (image right)
    lms[12] = [x - 0.1, y + 0.1, 0.0, 0.5]  # right shoulder
    return lms


@pytest.fixture
def fake_detector(monkeypatch, tmp_path):
    calls = []

    def run_worker(python, frames_path, out_path, **kw):
        stack = np.load(frames_path)
        calls.append(len(stack))
        # The person walks right; nobody is found in frame 2.
        frames = [None if i == 2 else landmarks(0.3 + 0.05 * i, 0.4) for i in range(len(stack))]
        return {"width": stack.shape[2], "height": stack.shape[1], "frames": frames}

    monkeypatch.setattr(extract, "run_worker", run_worker)
    monkeypatch.setattr(extract, "ensure_pose_env", lambda install=True: tmp_path / "python")
    return calls


def person_video(tmp_path, n=6):
    grey = [np.full((64, 96, 3), 90 + 10 * i, np.uint8) for i in range(n)]  # not a skeleton: grey
    return write_video(tmp_path / "walk.mp4", grey, fps=8)


def test_mediapipe_mapping_neck_is_shoulder_midpoint():
    coco = from_mediapipe(landmarks(0.5, 0.5), 100, 200)
    np.testing.assert_allclose(coco[INDEX["neck"]], [50, 120, 0.5])
    np.testing.assert_allclose(coco[INDEX["l_shoulder"]], [60, 120, 0.9])
    np.testing.assert_allclose(coco[INDEX["r_shoulder"]], [40, 120, 0.5])


def test_second_run_does_not_extract_again(tmp_path, fake_detector):
    video = person_video(tmp_path)
    args = dict(frames=6, fps=8, width=64, height=64, cache_dir=tmp_path / "cache")
    first = pose_frames(video, **args)  # auto-detected as person-video: the frames are not black
    assert fake_detector == [6]
    again = pose_frames(video, **args)
    assert fake_detector == [6]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # Other drawing options reuse the cached keypoints too.
    pose_frames(video, **{**args, "frames": 4, "fit": "cover"}, kind="person-video")
    assert fake_detector == [6]
    assert len(list((tmp_path / "cache" / "pose").glob("keypoints-*.json"))) == 1


def test_only_the_frames_a_clip_shows_are_extracted(tmp_path, fake_detector):
    import json

    video = person_video(tmp_path, n=6)  # 6 frames at 8 fps
    args = dict(width=64, height=64, cache_dir=tmp_path / "cache", kind="person-video")
    pose_frames(video, frames=3, fps=4, **args)  # shows source frames 0, 2, 4
    assert fake_detector == [3]
    pose_frames(video, frames=6, fps=8, **args)  # needs 1, 3, 5 as well: only those are extracted
    assert fake_detector == [3, 3]
    pose_frames(video, frames=2, fps=2, **args)  # 0 and 4: all cached
    assert fake_detector == [3, 3]
    (entry,) = (tmp_path / "cache" / "pose").glob("keypoints-*.json")
    assert sorted(json.loads(entry.read_text())["frames"], key=int) == [str(i) for i in range(6)]


def test_long_videos_go_in_chunks_each_cached_when_done(tmp_path, fake_detector, monkeypatch):
    video = person_video(tmp_path, n=6)
    args = dict(frames=6, fps=8, width=64, height=64, cache_dir=tmp_path / "cache", kind="person-video")
    monkeypatch.setattr(extract, "CHUNK", 2)
    real = extract.run_worker

    def fails_on_third(python, frames_path, out_path, **kw):
        if len(fake_detector) == 2:
            raise PoseSourceError("interrupted")
        return real(python, frames_path, out_path, **kw)

    monkeypatch.setattr(extract, "run_worker", fails_on_third)
    with pytest.raises(PoseSourceError, match="interrupted"):
        pose_frames(video, **args)
    assert fake_detector == [2, 2]
    monkeypatch.setattr(extract, "run_worker", real)
    pose_frames(video, **args)  # the two finished chunks were kept: only the last one runs
    assert fake_detector == [2, 2, 2]


def test_gap_is_filled_and_drawn(tmp_path, fake_detector):
    video = person_video(tmp_path)
    frames = pose_frames(video, frames=6, fps=8, width=96, height=64, fit="stretch", smooth=False,
                         cache_dir=tmp_path / "cache", kind="person-video")
    # Frame 2 had no detection: the nose is interpolated between frames 1 and 3 (x = 0.4 of 96 px).
    assert tuple(frames[2][round(0.4 * 64), round(0.4 * 96)]) == COLORS[INDEX["nose"]]


def test_no_person_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "ensure_pose_env", lambda install=True: tmp_path / "python")
    monkeypatch.setattr(extract, "run_worker", lambda python, frames_path, out_path, **kw: {
        "width": 96, "height": 64, "frames": [None] * 6})
    with pytest.raises(PoseSourceError, match="no person found in any of the 6 frames looked at"):
        pose_frames(person_video(tmp_path), frames=6, fps=8, width=64, height=64,
                    cache_dir=tmp_path / "cache", kind="person-video")


def test_fill_gaps_interpolates_and_holds():
    track = np.zeros((5, 1, 18, 3), np.float32)
    track[1, 0, 0] = (10, 20, 0.9)
    track[3, 0, 0] = (30, 40, 0.7)
    out = fill_gaps(track, 0.3)
    np.testing.assert_allclose(out[:, 0, 0, :2], [[10, 20], [10, 20], [20, 30], [30, 40], [30, 40]])
    assert (out[:, 0, 0, 2] >= 0.3).all()
    assert (out[:, 0, 1, 2] == 0).all()  # never seen: stays missing


def test_one_euro_removes_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    still = np.zeros((60, 1, 18, 3), np.float32)
    still[..., 2] = 1
    still[..., 0] = 200 + rng.normal(0, 2, still.shape[:-1])
    smoothed = one_euro(still, 30, scale=512)
    assert smoothed[10:, ..., 0].std() < 0.5 * still[10:, ..., 0].std()
    moving = still.copy()
    moving[..., 0] = 100 + 10 * np.arange(60)[:, None, None]  # 10 px a frame, steady
    lag = np.abs(one_euro(moving, 30, scale=512)[..., 0] - moving[..., 0])
    assert lag.max() < 6 and lag[15:].max() < 3  # the speed estimate warms up over the first frames


def test_despike_drops_one_frame_outliers_and_keeps_motion():
    track = np.zeros((7, 1, 18, 3), np.float32)
    track[..., 2] = 1
    track[..., 0] = 100 + 7 * np.arange(7)[:, None, None]  # a steady pan stays exactly as it was
    track[..., 1] = 50
    track[3, 0, 4, 1] = 80  # point 4 jumps 30 px for one frame
    track[5, 0, 6, 2] = 0.1  # point 6 is not seen on frame 5: its neighbours are left alone
    track[4, 0, 6, 1] = 90
    out = despike(track, threshold=0.3)
    np.testing.assert_array_equal(out[..., 0], track[..., 0])
    assert out[3, 0, 4, 1] == 50
    assert out[4, 0, 6, 1] == 90 and out[5, 0, 6, 2] == np.float32(0.1)
    np.testing.assert_array_equal(despike(track[:2]), track[:2])  # too short to judge


def test_despike_judges_the_end_frames_by_their_neighbours_line():
    track = np.zeros((6, 1, 18, 3), np.float32)
    track[..., 2] = 1
    track[..., 0] = 100 + 5 * np.arange(6)[:, None, None]
    np.testing.assert_array_equal(despike(track), track)  # a steady motion keeps its ends exactly
    track[0, 0, 0, 0] = 300  # the clip's first frame is a spike: it goes (to the next frame's value)
    track[-1, 0, 1, 0] = -50  # and so is the last one of another point
    out = despike(track)
    assert out[0, 0, 0, 0] == 105 and out[-1, 0, 1, 0] == 120
    smoothed = smooth_track(track, 8, scale=400)
    assert abs(smoothed[0, 0, 0, 0] - 100) < 10 and abs(smoothed[-1, 0, 1, 0] - 125) < 10
    # With jitter (1 px) the ends are left alone unless they are far off (here 40 px).
    rng = np.random.default_rng(3)
    noisy = np.zeros((12, 1, 18, 3), np.float32)
    noisy[..., 2] = 1
    noisy[..., 0] = 100 + 5 * np.arange(12)[:, None, None] + rng.normal(0, 1, (12, 1, 18))
    np.testing.assert_array_equal(despike(noisy)[[0, -1]], noisy[[0, -1]])
    noisy[0, 0, 3, 0] += 40
    assert abs(despike(noisy)[0, 0, 3, 0] - 100) < 8


def test_keypoint_cache_in_an_older_layout_is_ignored(tmp_path):
    import json

    entry = tmp_path / "keypoints-old.json"
    entry.write_text(json.dumps({"width": 8, "height": 8, "frames": [None, [[0, 0, 0, 1]] * 33]}))
    assert extract.cached_frames(entry) == {}
    entry.write_text("{not json")
    assert extract.cached_frames(entry) == {}
    assert extract.cached_frames(tmp_path / "absent.json") == {}


def test_smooth_track_follows_a_pan_without_lag():
    rng = np.random.default_rng(1)
    steady = np.zeros((40, 1, 18, 3), np.float32)
    steady[..., 2] = 1
    steady[..., 0] = 100 + 6 * np.arange(40)[:, None, None]  # 6 px a frame at 8 fps, like a camera pan
    steady[..., 1] = 200
    noisy = steady.copy()
    noisy[..., :2] += rng.normal(0, 2, noisy[..., :2].shape)
    forward_lag = np.abs(one_euro(steady, 8, scale=416)[5:-5, ..., 0] - steady[5:-5, ..., 0]).max()
    both_ways = np.abs(smooth_track(steady, 8, scale=416)[..., :2] - steady[..., :2]).max()
    assert forward_lag > 1 and both_ways < 0.01  # the forward and backward lags cancel on steady motion
    err_raw = np.abs(noisy[..., :2] - steady[..., :2]).mean()
    err_smooth = np.abs(smooth_track(noisy, 8, scale=416)[..., :2] - steady[..., :2]).mean()
    assert err_smooth < 0.75 * err_raw


def test_complexity_picks_the_model_and_refuses_a_missing_one(tmp_path, monkeypatch):
    from motion.pose import extract_env

    seen = []

    def run_worker(python, frames_path, out_path, **kw):
        seen.append(kw["complexity"])
        return {"width": 96, "height": 64, "frames": [landmarks(0.5, 0.4)] * 6}

    monkeypatch.setattr(extract, "run_worker", run_worker)
    monkeypatch.setattr(extract, "ensure_pose_env", lambda install=True: tmp_path / "python")
    monkeypatch.setattr(extract_env, "ensure_pose_env", lambda install=True: tmp_path / "python")
    args = dict(frames=6, fps=8, width=64, height=64, cache_dir=tmp_path / "cache", kind="person-video")
    video = person_video(tmp_path)
    monkeypatch.setattr(extract_env, "has_model", lambda complexity, env_dir=None: False)
    with pytest.raises(PoseSourceError) as info:
        pose_frames(video, complexity=2, **args)
    assert "complexity 2 model is not in the pose env" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PoseSourceError, match="complexity 7 is not one of 0"):
        pose_frames(video, complexity=7, **args)
    assert seen == []
    monkeypatch.setattr(extract_env, "has_model", lambda complexity, env_dir=None: True)
    pose_frames(video, complexity=2, **args)
    pose_frames(video, complexity=0, **args)
    assert seen == [2, 0]


def test_npm_models_are_checked_and_placed(tmp_path, monkeypatch):
    """The lite/heavy models come out of the npm tarball by name, each checked against its SHA-256."""
    import hashlib
    import io
    import tarfile

    from motion.pose import extract_env

    blobs = {"pose_landmark_lite.tflite": b"lite model", "pose_landmark_heavy.tflite": b"heavy model"}
    tgz = tmp_path / "registry" / extract_env.NPM_PACKAGE
    tgz.parent.mkdir(parents=True)
    with tarfile.open(tgz, "w:gz") as tar:
        for name, blob in {**blobs, "../escape.txt": b"x"}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    folder = tmp_path / "pose_landmark"
    folder.mkdir()
    registry = tgz.parent.parent.parent.parent.as_uri()  # file:// URL of the registry root
    monkeypatch.setattr(extract_env, "NPM_MODELS", {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()})
    assert sorted(extract_env.add_npm_models(folder, registry=registry)) == sorted(blobs)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == blobs
    assert not (tmp_path / "escape.txt").exists()
    for p in folder.iterdir():
        p.unlink()
    monkeypatch.setitem(extract_env.NPM_MODELS, "pose_landmark_heavy.tflite", "0" * 64)
    with pytest.raises(ValueError, match="pose_landmark_heavy.tflite .* does not match its pinned SHA-256"):
        extract_env.add_npm_models(folder, registry=registry)
    assert list(folder.iterdir()) == []  # all are checked before any is written


def test_check_tells_how_many_frames_the_detector_will_see(tmp_path, fake_detector, kit):
    import json

    import yaml
    from click.testing import CliRunner

    from animate.cli import main
    from animate.rendering.pose import load_pose_frames
    from animate.spec import load_script, resolve

    rng = np.random.default_rng(abs(hash(str(tmp_path))) % 2**32)  # content (and cache key) of its own
    write_video(tmp_path / "dancer.mp4", [rng.integers(60, 200, (64, 96, 3), np.uint8)] * 12, fps=8)
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny"}, "clips": [
        {"name": "c", "prompt": "x", "frames": 3, "fps": 4, "width": 32, "height": 32,
         "pose": {"source": "dancer.mp4", "controlnet": "tiny-openpose"}}]}))

    def plan():
        result = CliRunner().invoke(main, ["check", str(script), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output.splitlines()[0])["clips"][0]["pose"]

    report = plan()
    assert (report["kind"], report["source_frames"], report["extract_frames"]) == ("person-video", 12, 3)
    assert report["extract_estimate_s"] > 0 and fake_detector == []  # check itself detects nothing
    assert "detects 3 of them" in CliRunner().invoke(main, ["check", str(script)]).output
    load_pose_frames(resolve(load_script(script))[0])
    assert fake_detector == [3] and plan()["extract_frames"] == 0


def test_frames_the_header_promised_but_the_video_lacks_count_as_misses(tmp_path, fake_detector, monkeypatch):
    from motion.pose import sources
    from motion.pose.media import VideoInfo

    video = person_video(tmp_path, n=6)
    overstated = lambda path: VideoInfo(8, 8.0, 96, 64)  # noqa: E731 - the header says 8 frames, 6 decode
    monkeypatch.setattr(extract, "video_info", overstated)
    monkeypatch.setattr(sources, "video_info", overstated)
    frames = pose_frames(video, frames=8, fps=8, width=96, height=64, fit="stretch", smooth=False,
                         cache_dir=tmp_path / "cache", kind="person-video")
    assert fake_detector == [6] and len(frames) == 8
    # Frames 6 and 7 do not exist: the last seen pose (frame 5, nose at x = 0.55) is held.
    assert tuple(frames[7][round(0.4 * 64), round(0.55 * 96)]) == COLORS[INDEX["nose"]]
