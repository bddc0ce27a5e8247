"""`animate poses` and `render` share one pose cache, so a source is drawn (or a video looked at) once."""
import numpy as np
from click.testing import CliRunner
from PIL import Image

import animate.commands.poses
import animate.rendering.pose
from animate.cli import main
from animate.rendering.pose import load_pose_frames
from animate.spec import spec_from_fields


def pose_spec(source, **pose):
    return spec_from_fields(dict(preset="tiny", prompt="x", frames=4, width=32, height=32,
                                 pose={"source": str(source), "controlnet": "tiny", **pose}))[0]


def poses_command(source, out, *extra):
    return CliRunner().invoke(main, ["poses", str(source), "--out", str(out), "--frames", "4", "--width", "32",
                                     "--height", "32", *extra])


def test_a_person_video_goes_to_the_same_cache_from_both(kit, tmp_path, monkeypatch):
    video = tmp_path / "dance.mp4"
    video.write_bytes(b"stand-in: the pose layer is replaced below")
    seen = []

    def keypoints(source, *, frames, cache_dir=None, **kwargs):
        seen.append(("poses", cache_dir))
        return [np.zeros((1, 18, 3), np.float32)] * frames

    def drawn(source, *, frames, width, height, cache_dir=None, **kwargs):
        seen.append(("render", cache_dir))
        return [np.zeros((height, width, 3), np.uint8)] * frames

    # Patched where `animate poses` and the renderer look them up.
    monkeypatch.setattr(animate.commands.poses, "pose_keypoints", keypoints)
    monkeypatch.setattr(animate.rendering.pose, "pose_frames", drawn)
    result = poses_command(video, tmp_path / "out", "--kind", "person-video")
    assert result.exit_code == 0, result.output
    load_pose_frames(pose_spec(video, kind="person-video"))
    (_, by_poses), (_, by_render) = seen
    assert by_poses is not None and by_poses == by_render


def test_render_reuses_what_poses_drew(kit, tmp_path, monkeypatch):
    folder = tmp_path / "skeleton"
    folder.mkdir()
    for i in range(4):
        image = np.zeros((32, 32, 3), np.uint8)
        image[8 + i:12 + i, 8:24] = (255, 0, 0)
        Image.fromarray(image).save(folder / f"frame_{i:02d}.png")
    result = poses_command(folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    from motion.pose import sources

    def drawn_again(*args, **kwargs):
        raise AssertionError("the skeleton source was read again instead of the cache")

    monkeypatch.setitem(sources.SOURCES, "skeleton", drawn_again)
    frames = load_pose_frames(pose_spec(folder))
    exported = [np.asarray(Image.open(tmp_path / "out" / f"frame_{i:05d}.png")) for i in range(4)]
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(frames, exported))
