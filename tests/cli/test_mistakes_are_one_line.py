"""Mistakes that used to escape as tracebacks: each is now one line with the right exit code."""
import json

import yaml
from click.testing import CliRunner

from animate.cli import main
from cli_helpers import assert_one_error_line


def run(tmp_path, *args):
    return CliRunner().invoke(main, [*args])


def script_with(tmp_path, **fields):
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", "frames": 2, "width": 16,
                                                                  "height": 16, "steps": 1, **fields},
                                      "clips": [{"name": "a", "prompt": "x"}]}))
    return script


def test_bad_device_is_one_line(kit, tmp_path):
    out = tmp_path / "o"
    result = run(tmp_path, "render", str(script_with(tmp_path)), "--out", str(out), "--device", "gpu")
    assert_one_error_line(result, out, "--device", "gpu")
    result = run(tmp_path, "render", str(script_with(tmp_path)), "--out", str(out), "--device", "cuda:7")
    assert_one_error_line(result, out, "--device", "not available")


def test_lcm_steps_above_its_limit(kit, tmp_path):
    out = tmp_path / "o"
    result = run(tmp_path, "render", str(script_with(tmp_path, steps=60)), "--out", str(out))
    assert_one_error_line(result, out, "clip a", "60", "LCM")


def test_output_options_checked_before_rendering(kit, tmp_path):
    out = tmp_path / "o"
    result = run(tmp_path, "render", str(script_with(tmp_path, outputs={"gif": {"fps": 12}})), "--out", str(out))
    assert_one_error_line(result, out, "outputs.gif.fps", "clip's `fps`")
    result = run(tmp_path, "render", str(script_with(tmp_path, outputs={"gif": {"colours": 3}})), "--out", str(out))
    assert_one_error_line(result, out, "outputs.gif", "colours", "valid options")
    result = run(tmp_path, "check", str(script_with(tmp_path, outputs={"gif": {"colours": 3}})))
    assert result.exit_code == 2


def test_two_loras_with_the_same_file_name(kit, tmp_path):
    zoom = kit / "motion-lora-zoom-in" / "diffusion_pytorch_model.safetensors"
    pan = kit / "motion-lora-pan-left" / "diffusion_pytorch_model.safetensors"
    result = run(tmp_path, "render", "--preset", "tiny", "--prompt", "x", "--frames", "2", "--width", "16",
                 "--height", "16", "--steps", "1", "--lora", f"{zoom}:0.5", "--lora", f"{pan}:0.7", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "motion-lora-zoom-in:0.5" in result.output and "motion-lora-pan-left:0.7" in result.output


def test_check_json_prints_the_plan(kit, tmp_path):
    result = run(tmp_path, "check", str(script_with(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["event"] == "plan"


def test_models_tiny_refuses_a_foreign_folder(kit, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "sd15.safetensors").write_bytes(b"x")
    result = run(tmp_path, "models", "tiny", "--out", str(tmp_path / "mine"))
    assert result.exit_code == 2 and "not an animate model kit" in result.output
    assert (tmp_path / "mine" / "sd15.safetensors").exists()


def test_pose_clip_through_the_python_api(kit, tmp_path):
    import animate

    pose = {"source": {0: {"nose": [0.5, 0.2], "neck": [0.5, 0.35]}, 1: {"nose": [0.6, 0.2], "neck": [0.6, 0.35]}},
            "controlnet": "tiny"}
    clip = animate.render(prompt="x", preset="tiny", frames=2, width=16, height=16, steps=1, pose=pose, device="cpu")
    assert clip.frames.shape == (2, 16, 16, 3)
