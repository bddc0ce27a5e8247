"""animate.run.checks: everything knowable before a model loads, as `check`, `render` and the API see it."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import save_file

from animate.run.checks import check_output_root, check_specs, estimate_output_bytes
from animate.cli import main
from animate.errors import ConfigError, ModelError, OutputError
from animate.spec import spec_from_fields
from cli_helpers import assert_one_error_line


def write_script(tmp_path, clip_fields, defaults):
    script = tmp_path / "bad.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": defaults, "clips": [{"name": "c1", **clip_fields}]}))
    return script


def check(script):
    return CliRunner().invoke(main, ["check", str(script)])


@pytest.fixture
def defaults(tiny_fields):
    return {**tiny_fields, "frames": 4, "outputs": ["png"]}


def base_copy(kit, tmp_path, **scheduler):
    """The kit's base folder with its scheduler config changed (the rest shared by symlinks)."""
    folder = tmp_path / "base-copy"
    folder.mkdir()
    for part in (kit / "base").iterdir():
        if part.name != "scheduler":
            (folder / part.name).symlink_to(part)
    (folder / "scheduler").mkdir()
    config = json.loads((kit / "base" / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, **scheduler}))
    return folder


# ------------------------------------------------------------------ output option values

def test_check_refuses_an_output_value_the_encoder_would(kit, tmp_path, defaults):
    result = check(write_script(tmp_path, {"outputs": {"gif": {"quality": 500}}}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "bad.yaml: clip c1: outputs.gif.quality", "[1, 100]", "500")
    result = check(write_script(tmp_path, {"fps": 60, "outputs": ["gif"]}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1: outputs.gif.fps", "50 fps")


def test_options_animate_sets_itself(kit, tmp_path, defaults):
    result = check(write_script(tmp_path, {"outputs": {"mp4": {"metadata": "x"}}}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1: outputs.mp4.metadata cannot be set per output",
                          "embeds the clip spec")


# ------------------------------------------------------------------ scheduler limits from the scheduler's config

def test_lcm_limit_comes_from_the_base_models_scheduler_config(kit, tmp_path, defaults):
    folder = base_copy(kit, tmp_path, original_inference_steps=10)
    result = check(write_script(tmp_path, {"model": "./base-copy", "steps": 12}, defaults))
    config = folder / "scheduler" / "scheduler_config.json"
    assert_one_error_line(result, tmp_path / "no-out", "bad.yaml: clip c1", "steps: 12", "allows (10",
                          f"original_inference_steps in {config}", "4–8 steps")
    result = check(write_script(tmp_path, {"model": "./base-copy", "steps": 10}, defaults))
    assert result.exit_code == 0, result.output


def test_lcm_limit_without_the_key_is_the_scheduler_class_default(kit, tmp_path, defaults):
    result = check(write_script(tmp_path, {"steps": 51}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1", "steps: 51", "allows (50",
                          "LCMScheduler's default original_inference_steps")


def test_ddim_refuses_more_steps_than_its_training_timesteps(kit, tmp_path, defaults):
    base_copy(kit, tmp_path, num_train_timesteps=100)
    result = check(write_script(tmp_path, {"model": "./base-copy", "scheduler": "ddim", "steps": 120}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1", "steps: 120", "ddim", "(100",
                          "num_train_timesteps in")


def test_a_config_the_scheduler_refuses_is_one_line(kit, tmp_path, defaults):
    base_copy(kit, tmp_path, timestep_spacing="sideways")
    result = check(write_script(tmp_path, {"model": "./base-copy", "scheduler": "euler", "steps": 4}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1", "euler scheduler (EulerDiscreteScheduler)",
                          "refuses 4 steps", "sideways")


def fake_hub_cache(root, repo, files: dict):
    """A hub cache holding `repo` at main with `files` (name → bytes), as huggingface_hub lays it out."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        path = folder / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_limits_and_lora_headers_from_a_cached_hub_snapshot(kit, tmp_path, monkeypatch, tiny_fields):
    from huggingface_hub import constants

    config = json.loads((kit / "base" / "scheduler" / "scheduler_config.json").read_text())
    base_files = {"scheduler/scheduler_config.json": json.dumps({**config, "original_inference_steps": 6}).encode()}
    fake_hub_cache(tmp_path / "hub", "someone/base", base_files)
    checkpoint = (kit / "base.safetensors").read_bytes()
    fake_hub_cache(tmp_path / "hub", "someone/not-a-lora", {"model.safetensors": checkpoint})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    specs = spec_from_fields({**tiny_fields, "model": "someone/base", "steps": 8, "outputs": ["png"]})
    with pytest.raises(ConfigError, match=r"steps: 8 is more than the lcm scheduler allows \(6, "
                                          r"original_inference_steps in .*models--someone--base.*scheduler_config"):
        check_specs(specs, reachable=False)
    adapters = [{"name": "style", "source": {"source": "someone/not-a-lora", "weight_name": "model.safetensors"}}]
    specs = spec_from_fields({**tiny_fields, "adapters": adapters, "outputs": ["png"]})
    with pytest.raises(ModelError, match=r"adapters\[0\] \(style\): someone/not-a-lora \(model.safetensors\) is "
                                         r"not a LoRA: it looks like a full base-model checkpoint"):
        check_specs(specs)  # offline, but cached: nothing to reach


# ------------------------------------------------------------------ a .safetensors that is not a LoRA

@pytest.mark.parametrize("source, looks_like, fix", [
    ("tiny-file", "a full base-model checkpoint", "use it as `model:`"),
    ("tiny-motion-file", "a motion adapter", "use it as `motion_adapter:`"),
    ("tiny-lightning", "a motion adapter", "use it as `motion_adapter:`"),
    ("tiny-openpose-file", "a ControlNet", "pose: {controlnet: ...}"),
])
def test_check_refuses_a_model_file_given_as_a_lora(kit, tmp_path, defaults, source, looks_like, fix):
    result = check(write_script(tmp_path, {"adapters": [{"name": "style", "source": source}]}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "bad.yaml: clip c1: adapters[0] (style)", str(kit),
                          "is not a LoRA", looks_like, fix)


def test_check_refuses_random_tensors_given_as_a_lora(kit, tmp_path, defaults):
    import torch

    save_file({"weights.0": torch.zeros(4, 4), "weights.1": torch.ones(2)}, str(tmp_path / "random.safetensors"))
    result = check(write_script(tmp_path, {"adapters": [{"name": "odd", "source": "random.safetensors",
                                                         "kind": "motion"}]}, defaults))
    assert_one_error_line(result, tmp_path / "no-out", "clip c1: adapters[0] (odd)", "random.safetensors",
                          "none of its 2 tensors is a LoRA weight")


def test_render_refuses_it_before_loading_anything(kit, tmp_path, defaults):
    script = write_script(tmp_path, {"adapters": [{"name": "style", "source": "tiny-file"}]}, defaults)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert_one_error_line(result, out, "bad.yaml: clip c1: adapters[0] (style)", "base.safetensors",
                          "full base-model checkpoint")


def test_real_loras_still_pass(kit, tmp_path, defaults):
    adapters = [{"name": "lcm", "source": "tiny-lcm", "kind": "lcm"},
                {"name": "zoom", "source": "tiny-zoom-in", "kind": "motion"}]
    result = check(write_script(tmp_path, {"adapters": adapters}, defaults))
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ the output root

def tiny_specs(tiny_fields, **fields):
    return spec_from_fields({**tiny_fields, "frames": 4, "outputs": ["png"], **fields})


def test_output_root_that_is_a_file(kit, tmp_path, tiny_fields):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OutputError, match=r"--out .*taken: the output root is a file, not a folder; give a folder"):
        check_specs(tiny_specs(tiny_fields), out=tmp_path / "taken")
    with pytest.raises(OutputError, match=r"taken, a parent of the output root, is a file"):
        check_output_root(tmp_path / "taken" / "clips")


def test_render_under_a_file_is_one_line(kit, tmp_path, defaults):
    # click already refuses `--out FILE`; a file higher up the path is ours to find, before anything renders.
    script = write_script(tmp_path, {}, defaults)
    (tmp_path / "taken").write_text("not a folder")
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "taken" / "out"), "--quiet"])
    assert_one_error_line(result, tmp_path / "no-out", f"--out {tmp_path / 'taken' / 'out'}",
                          "a parent of the output root, is a file", "give a folder")
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_output_root_short_of_space(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_output_root(tmp_path / "new" / "folder", planned_bytes=1024)  # made later; room enough
    with pytest.raises(OutputError, match=r"need about .* but only .* is free on the filesystem of .*; free some"):
        check_output_root(tmp_path / "new", planned_bytes=free * 2)


def test_read_only_output_root_by_the_write_probe(tmp_path, monkeypatch):
    # Tests run as root, which writes through mode bits: the probe file is what tells (forced to fail here;
    # a real read-only mount is the next test).
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=r"cannot write in .* \(read-only or no permission\); choose a folder"):
        check_output_root(tmp_path / "out")


def test_read_only_mount(tmp_path):
    """A real read-only tmpfs, mounted in a private mount namespace that vanishes with the process."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare here")
    target = tmp_path / "ro"
    target.mkdir()
    code = ("import sys; from pathlib import Path; from animate.run.checks import check_output_root\n"
            "from animate.errors import OutputError\n"
            "try:\n    check_output_root(Path(sys.argv[1]) / 'out')\nexcept OutputError as e:\n    print(e.line())")
    cmd = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o ro,size=1m tmpfs "$1" || exit 77; shift; exec "$@"',
           "sh", str(target), sys.executable, "-c", code, str(target)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode == 77 or "unshare:" in run.stderr:
        pytest.skip(f"cannot mount a read-only tmpfs here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert f"cannot write in {target} (read-only or no permission)" in run.stdout, run.stdout + run.stderr


def test_estimate_is_generous_against_real_outputs(kit, renderer, tmp_path, tiny_fields):
    from animate.run.checks import FORMAT_FACTORS
    from animate.run.runner import run_specs

    # The tiny kit's frames are close to noise, the worst case for every encoder.
    specs = tiny_specs(tiny_fields, frames=16, width=64, height=64, outputs=["gif", "mp4", "png", "webp"])
    summary = run_specs(specs, out=tmp_path / "out", script_stem="est", renderer=renderer)
    assert summary.done
    raw = 16 * 64 * 64 * 3
    for fmt, name in (("gif", "clip.gif"), ("mp4", "clip.mp4"), ("webp", "clip.webp"), ("png", "clip")):
        path = tmp_path / "out" / "est" / name
        written = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        assert 0 < written <= raw * FORMAT_FACTORS[fmt], (fmt, written, raw)
    everything = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert everything <= estimate_output_bytes(specs[0])


def test_estimate_grows_with_what_is_written(tiny_fields):
    one = estimate_output_bytes(tiny_specs(tiny_fields)[0])
    assert estimate_output_bytes(tiny_specs(tiny_fields, frames=8)[0]) > one
    assert estimate_output_bytes(tiny_specs(tiny_fields, outputs={"png": {"bits": 16}})[0]) > one
    assert estimate_output_bytes(tiny_specs(tiny_fields, outputs={"png": {"interpolate": 2}})[0]) > one
    assert estimate_output_bytes(tiny_specs(tiny_fields, outputs=["png", "ffv1"])[0]) > one


# ------------------------------------------------------------------ one entry point

def test_api_render_runs_the_same_checks(kit, tiny_fields):
    import animate

    fields = {**tiny_fields, "steps": 60}
    with pytest.raises(ConfigError, match="steps: 60 is more than the lcm scheduler allows"):
        animate.render(fields.pop("prompt"), **fields)


def test_dry_run_runs_the_same_checks(kit, tmp_path, defaults):
    script = write_script(tmp_path, {"adapters": [{"name": "style", "source": "tiny-motion-file"}]}, defaults)
    result = CliRunner().invoke(main, ["render", str(script), "--dry-run"])
    assert_one_error_line(result, tmp_path / "no-out", "clip c1: adapters[0] (style)", "motion adapter")


# ------------------------------------------------------------------ several problems at once

def test_check_reports_every_problem_of_every_clip_at_once(kit, tmp_path, defaults):
    """A script with mistakes in two clips and two fields is fixed in one pass: one error line each, exit 2,
    nothing written; a source missing in both clips is named once."""
    import torch

    save_file({"decoder.conv_in.weight": torch.zeros(2, 2)}, str(tmp_path / "vae.safetensors"))  # not a LoRA
    lora = [{"name": "x", "source": "vae.safetensors"}]
    clips = [{"name": "c1", "outputs": {"gif": {"quality": 500}}, "adapters": lora},
             {"name": "c2", "steps": 120, "adapters": [dict(lora[0])]}]
    script = tmp_path / "bad.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {**defaults, "scheduler": "lcm"}, "clips": clips}))
    out = tmp_path / "out"
    for command in (["check", str(script), "--out", str(out)], ["render", str(script), "--out", str(out)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert all(ln.startswith("error: ") for ln in lines) and "Traceback" not in result.output
        assert len(lines) == 3, lines
        assert "clip c1: outputs.gif.quality" in lines[0]
        assert sum("vae.safetensors is not a LoRA" in ln for ln in lines) == 1
        assert any("clip c2" in ln and "steps: 120" in ln for ln in lines), lines
        assert not out.exists() or not any(out.rglob("*"))
