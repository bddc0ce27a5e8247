"""The device bundle (benchmarks/device/): what the GPU check imports is in the lent image, in the bundle, or in
the standard library, so the first lent minute is not spent on a missing module; and the README's command is the
script's. (The bundle's download and install line were checked in a clean Python 3.12 venv: device/README.md.)"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "device"))

import bundle  # noqa: E402

# What the check's rows import, the lazy imports inside functions included.
PROBE = """
import importlib.metadata, json, sys
import benchmarks.gpu_check, animate.cli, animate.rendering.renderer, animate.encode, animate.models.tiny, animate.spec
import animate.models.schedulers, animate.rendering.memory, animate.rendering.fastpaths, animate.rendering.numeric, animate.rendering.keyframes
import motion.loras, motion.freenoise, motion.adapters, motion.context, motion.travel, motion.unet_windows
import diffusers, peft, safetensors.torch, transformers, torch.utils.flop_counter, imageio_ffmpeg
from diffusers import AnimateDiffPipeline, MotionAdapter, AutoencoderKL, UNet2DConditionModel, StableDiffusionPipeline
from diffusers.video_processor import VideoProcessor
from transformers import CLIPTextConfig, CLIPTextModel
from peft.tuners.tuners_utils import BaseTunerLayer
owners = importlib.metadata.packages_distributions()
names = {m.split(".")[0] for m in list(sys.modules)} - set(sys.stdlib_module_names)
# Private helper modules (_cython_*, editable-install finders, __main__) belong to no distribution.
print(json.dumps(sorted({d for n in names if not n.startswith("_") for d in owners.get(n, [n])})))
"""


# Imported here only because this venv has them: the libraries take them when present (diffusers `kernels`,
# huggingface-hub 2's httpx2, pip's truststore) and run without them on the image (the Python 3.12 check).
OPTIONAL_HERE = {"cython-runtime", "kernels", "httpx2", "httpcore2", "truststore"}


def norm(name: str) -> str:
    return name.lower().replace("_", "-")


def test_every_module_the_check_imports_is_in_the_image_or_the_bundle():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    used = {norm(d) for d in json.loads(out.stdout.strip().splitlines()[-1])}
    known = {norm(n) for n in bundle.IMAGE | set(bundle.BUNDLE)} | {"animate", "motion", "benchmarks"} | OPTIONAL_HERE
    assert used - known == set()


def test_the_readme_runs_the_scripts_command():
    readme = (ROOT / "benchmarks" / "device" / "README.md").read_text()
    assert bundle.COMMAND in readme
    assert "$OUT" in bundle.COMMAND and "--target /tmp/site .whl/*.whl" in bundle.COMMAND


def test_pins_take_the_installed_version_except_the_fixed_ones():
    pins = bundle.pins()
    assert set(pins) == set(bundle.BUNDLE) and pins["imageio-ffmpeg"] == bundle.BUNDLE["imageio-ffmpeg"]
    import diffusers

    assert pins["diffusers"] == diffusers.__version__
