"""Pose clips through `animate render`: real sources render; each bad source stops with one line (exit 2)."""
import json

import yaml
from click.testing import CliRunner

from animate.cli import main
from cli_helpers import assert_one_error_line


def person(x, y, conf=0.9):
    """A COCO-18 person around (x, y) in a 64x64 canvas."""
    pts = [(x, y - 20), (x, y - 12), (x - 8, y - 12), (x - 12, y - 2), (x - 14, y + 6), (x + 8, y - 12),
           (x + 12, y - 2), (x + 14, y + 6), (x - 5, y + 6), (x - 6, y + 16), (x - 6, y + 26), (x + 5, y + 6),
           (x + 6, y + 16), (x + 6, y + 26), (x - 2, y - 22), (x + 2, y - 22), (x - 4, y - 21), (x + 4, y - 21)]
    return {"pose_keypoints_2d": [v for px, py in pts for v in (px, py, conf)]}


def openpose_file(path, n, people=True):
    frames = [{"people": [person(20 + 3 * i, 32)] if people else []} for i in range(n)]
    path.write_text(json.dumps(frames))
    return path


def render(tmp_path, pose, frames=4):
    script = tmp_path / "dance.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": frames, "width": 32, "height": 32, "steps": 1, "outputs": ["png"]},
        "clips": [{"name": "dance", "prompt": "a dancer", "pose": pose}]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    return result, out


def test_openpose_json_clip_renders(kit, tmp_path):
    openpose_file(tmp_path / "moves.json", 4)
    result, out = render(tmp_path, {"source": "moves.json", "controlnet": "tiny", "scale": 0.9, "canvas": [64, 64]})
    assert result.exit_code == 0, result.output
    sidecar = json.loads((out / "dance" / "dance.json").read_text())
    assert sidecar["spec"]["pose"]["scale"] == 0.9 and "controlnet" in sidecar["models"]
    assert len(list((out / "dance" / "dance").glob("frame_*.png"))) == 4


def test_wrong_frame_count(kit, tmp_path):
    openpose_file(tmp_path / "short.json", 3)
    result, out = render(tmp_path, {"source": "short.json", "controlnet": "tiny", "canvas": [64, 64]})
    assert_one_error_line(result, out, "clip dance", "pose", "3", "4")


def test_unreadable_video(kit, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 not a video at all" * 50)
    result, out = render(tmp_path, {"source": "broken.mp4", "controlnet": "tiny"})
    assert_one_error_line(result, out, "clip dance", "broken.mp4")


def test_json_without_people(kit, tmp_path):
    openpose_file(tmp_path / "empty.json", 4, people=False)
    result, out = render(tmp_path, {"source": "empty.json", "controlnet": "tiny", "canvas": [64, 64]})
    assert_one_error_line(result, out, "clip dance", "empty.json", "no people")


def test_controlnet_that_does_not_fit(kit, tmp_path):
    from diffusers import ControlNetModel

    ControlNetModel(block_out_channels=(16, 16), layers_per_block=1, in_channels=4, cross_attention_dim=16,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    conditioning_embedding_out_channels=(8, 8), norm_num_groups=2).save_pretrained(tmp_path / "cn")
    openpose_file(tmp_path / "moves.json", 4)
    result, out = render(tmp_path, {"source": "moves.json", "controlnet": "./cn", "canvas": [64, 64]})
    assert_one_error_line(result, out, "clip dance", "pose.controlnet", "does not fit")


def test_check_reports_pose_frames(kit, tmp_path):
    openpose_file(tmp_path / "short.json", 3)
    script = tmp_path / "plan.yaml"

    def check(pose):
        script.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", "frames": 4},
                                          "clips": [{"name": "d", "prompt": "x", "pose": pose}]}))
        return CliRunner().invoke(main, ["check", str(script)])

    # Another frame count without source_fps is refused by `check` as `render` refuses it (tests/run/test_matrix.py).
    result = check({"source": "short.json", "controlnet": "tiny"})
    assert result.exit_code == 2 and "has 3 frames but the clip has 4" in result.output, result.output
    result = check({"source": "short.json", "controlnet": "tiny", "source_fps": 8, "canvas": [64, 64]})
    assert result.exit_code == 0, result.output
    assert "pose openpose-json (3 frames)" in result.output
    assert "pose source has 3 frames for 4 clip frames: sampled by time" in result.output


def test_single_file_controlnet_without_config(kit, tmp_path):
    """An original-format ControlNet file with no `config:` offline: one line saying what to add."""
    import shutil

    shutil.copy(kit / "controlnet-openpose.safetensors", tmp_path / "openpose.safetensors")
    openpose_file(tmp_path / "moves.json", 4)
    result, out = render(tmp_path, {"source": "moves.json", "controlnet": "openpose.safetensors", "canvas": [64, 64]})
    assert_one_error_line(result, out, "clip dance", "pose.controlnet", "openpose.safetensors", "config:")


def test_single_file_controlnet_with_config_renders(kit, tmp_path):
    openpose_file(tmp_path / "moves.json", 4)
    result, out = render(tmp_path, {"source": "moves.json", "canvas": [64, 64],
                                    "controlnet": {"source": str(kit / "controlnet-openpose.safetensors"),
                                                   "config": str(kit / "controlnet-openpose")}})
    assert result.exit_code == 0, result.output
    assert len(list((out / "dance" / "dance").glob("frame_*.png"))) == 4
