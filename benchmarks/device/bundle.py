"""Download, here, the Python 3.12 manylinux wheels of what the lent GPU machine's image lacks for
`python -m benchmarks.gpu_check` into the ignored `.whl/` folder at the repository root, and print their size and
the one command that runs the check there (benchmarks/device/README.md).

    python benchmarks/device/bundle.py            # needs pip and PyPI; stdlib only otherwise

Each wheel is the version installed here (the one the tests ran with) where there is one, else the pin below
(imageio-ffmpeg always its pin: see FIXED);
`--no-deps`: every package the image lacks is named. Wheels of other versions in `.whl/` are removed (two
versions of one package stop the install there)."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".whl"
LIMIT = 64 * 2 ** 20  # what one device call carries, working tree included

# What the image ('cuda', read on 2026-11-17; /work/.library/device/KINDS.md) lacks that the check imports,
# with the version to take when this machine has none installed.
BUNDLE = {"diffusers": "0.42.1", "pydantic": "2.14.4", "pydantic-core": "2.50.5", "annotated-types": "0.8.0",
          "typing-inspection": "0.4.5", "imageio-ffmpeg": "0.6.0"}
# Taken at this version whatever is installed here: imageio-ffmpeg 0.8's wheel (its ffmpeg) is 64.8 MiB, more than a
# call carries; 0.6.0's is 28.1 MiB and has the same API (get_ffmpeg_exe).
FIXED = {"imageio-ffmpeg"}
# Distributions the image has (the list in KINDS.md, the ones the check reaches): tests/test_device_bundle.py
# checks that every module the check imports comes from these, the bundle, or the standard library.
IMAGE = {"accelerate", "certifi", "charset-normalizer", "click", "filelock", "fsspec", "hf-xet", "huggingface-hub",
         "idna", "imageio", "jinja2", "markupsafe", "mpmath", "networkx", "numpy", "nvidia-ml-py",
         "opencv-python-headless", "packaging", "peft", "pillow", "psutil", "pyyaml", "regex", "requests",
         "safetensors", "scipy", "sympy", "tokenizers", "torch", "tqdm", "transformers", "triton",
         "typing-extensions", "urllib3", "zipp", "protobuf", "httpx", "httpcore", "h11", "anyio", "sniffio", "rich",
         "markdown-it-py", "mdurl", "pygments", "shellingham", "typer", "setuptools", "cuda-bindings",
         "cuda-pathfinder", "cuda-toolkit", "nvidia-cublas", "nvidia-cuda-runtime", "nvidia-cudnn-cu13"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
COMMAND = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
           ".whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 timeout 330 python3 -m "
           "benchmarks.gpu_check $OUT --budget 170 --compile-budget 120")


def pins() -> dict[str, str]:
    out = {}
    for name, fallback in BUNDLE.items():
        if name in FIXED:
            out[name] = fallback
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = fallback
    return out


def wheel_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def download(wanted: dict[str, str]) -> list[Path]:
    WHEELS.mkdir(exist_ok=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    specs = [f"{name}=={version}" for name, version in wanted.items()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(WHEELS), *specs],
                   check=True)
    keep = {f"{wheel_name(n)}-{v}-" for n, v in wanted.items()}
    wheels = []
    for path in sorted(WHEELS.glob("*.whl")):
        if any(path.name.lower().startswith(k.lower()) for k in keep):
            wheels.append(path)
        else:
            path.unlink()  # another version, or a package no longer bundled
    return wheels


def main() -> int:
    wanted = pins()
    wheels = download(wanted)
    missing = [n for n in wanted if not any(w.name.lower().startswith(wheel_name(n) + "-") for w in wheels)]
    if missing:
        print(f"bundle: no wheel came for {', '.join(missing)}", file=sys.stderr)
        return 1
    size = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"{w.stat().st_size / 2 ** 20:7.1f} MiB  {w.name}")
    print(f"{size / 2 ** 20:7.1f} MiB  in {WHEELS} ({len(wheels)} wheels; a device call carries {LIMIT // 2 ** 20} MiB "
          "with the working tree)")
    if size > LIMIT * 0.9:
        print("bundle: too large to carry with the working tree", file=sys.stderr)
        return 1
    print(f"\ndevice run: carry ['.whl'], timeout_s 360, command:\n{COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
