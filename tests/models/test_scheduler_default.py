"""`scheduler: default` builds the model's own scheduler class, whatever diffusers has imported so far."""
import json
import subprocess
import sys

import pytest

from animate.errors import ConfigError
from animate.models.schedulers import build_scheduler

# The scheduler classes the checkpoints people use ship with: SD1.5 (PNDM), SDXL bases (EulerDiscrete), and what
# fine-tunes and distilled models set (DDIM, LCM, DPM-Solver, Euler ancestral, UniPC, LMS, DDPM, Heun, KDPM2).
SHIPPED = ["PNDMScheduler", "EulerDiscreteScheduler", "DDIMScheduler", "LCMScheduler", "DPMSolverMultistepScheduler",
           "EulerAncestralDiscreteScheduler", "UniPCMultistepScheduler", "LMSDiscreteScheduler", "DDPMScheduler",
           "HeunDiscreteScheduler", "KDPM2DiscreteScheduler"]


def test_every_shipped_scheduler_class_builds_in_a_fresh_process():
    # A fresh interpreter: diffusers' lazy top-level module has not touched any scheduler class yet, which is
    # where `diffusers.__dict__[name]` used to raise KeyError.
    code = (
        "import json, sys\n"
        "from animate.models.schedulers import build_scheduler\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps([type(build_scheduler('default', {'_class_name': n})).__name__ for n in names]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(SHIPPED)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == SHIPPED


def test_the_models_own_config_values_are_kept():
    scheduler = build_scheduler("default", {"_class_name": "PNDMScheduler", "beta_end": 0.012, "skip_prk_steps": True,
                                            "steps_offset": 1})
    assert scheduler.config.beta_end == 0.012 and scheduler.config.skip_prk_steps is True


@pytest.mark.parametrize("name", ["AutoencoderKL", "NoSuchScheduler", None, "__class__"])
def test_a_config_that_names_no_scheduler_is_one_clear_error(name):
    with pytest.raises(ConfigError, match="not a diffusers scheduler") as info:
        build_scheduler("default", {"_class_name": name})
    assert "choose a scheduler by name" in info.value.line()


def test_check_reports_the_clip_and_exits_2_for_a_foreign_scheduler_class(tmp_path, kit):
    import shutil

    from click.testing import CliRunner

    from animate.cli import main

    model = tmp_path / "model"
    shutil.copytree(kit / "base", model)
    config = model / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_class_name": "MyOwnScheduler"}))
    script = tmp_path / "s.yaml"
    script.write_text(f"version: 1\nclips:\n  - name: a\n    prompt: x\n    model: {model}\n"
                      "    motion_adapter: tiny\n    scheduler: default\n    width: 32\n    height: 32\n")
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "MyOwnScheduler" in result.output and "Traceback" not in result.output
