"""Pinned and checked models: a pickle whose payload would write a marker never runs (refused by default; with
allow_pickle, weights_only=True refuses it); a sha256 pin that does not match is refused before anything
loads, by `check` and by `render`; .safetensors headers are judged before any tensor is read; hub sources
record the commit they came from."""
import hashlib
import json
import shutil
import struct
import subprocess

import pytest
import torch
import yaml
from click.testing import CliRunner

from animate.models import weights
from animate.cli import main
from animate.errors import ModelError
from animate.models.sources import hub_commit, resolve_source
from animate.models.weights import read_safetensors_keys
from animate.models.weights import check_safetensors_header, folder_digest

BASE = {"preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "prompt": "a boat", "outputs": ["gif"]}


class Payload:
    """Unpickling this writes the marker file: what a hostile checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def hostile_checkpoint(path, marker):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path)
    return path


def script(tmp_path, **clip):
    path = tmp_path / "safety.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "defaults": BASE, "clips": [{"name": "c", **clip}]}))
    return path


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("error")]


@pytest.mark.parametrize("slot", ["adapter", "model"])
def test_a_hostile_pickle_is_refused_by_default_and_never_runs(kit, tmp_path, slot):
    marker = tmp_path / "marker"
    evil = hostile_checkpoint(tmp_path / "evil.ckpt", marker)
    clip = ({"adapters": [{"name": "evil", "source": str(evil)}]} if slot == "adapter"
            else {"model": {"source": str(evil), "config": str(kit / "base")}})
    result = run("render", script(tmp_path, **clip), "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code == 2, result.output
    assert "pickle checkpoint" in result.output and "allow_pickle" in result.output
    assert not marker.exists()


@pytest.mark.parametrize("slot", ["adapter", "model"])
def test_with_allow_pickle_a_hostile_pickle_is_still_not_run(kit, tmp_path, slot):
    marker = tmp_path / "marker"
    evil = hostile_checkpoint(tmp_path / "evil.ckpt", marker)
    clip = ({"adapters": [{"name": "evil", "source": {"source": str(evil), "allow_pickle": True}}]}
            if slot == "adapter" else
            {"model": {"source": str(evil), "config": str(kit / "base"), "allow_pickle": True}})
    result = run("render", script(tmp_path, **clip), "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code != 0, result.output
    [line] = error_lines(result)
    assert "evil.ckpt is refused: loading it with weights_only=True failed" in line, result.output
    assert not marker.exists()


def test_a_trusted_pickle_lora_loads_with_allow_pickle(kit, tmp_path):
    from safetensors.torch import load_file

    lora = tmp_path / "lcm.bin"
    torch.save(load_file(kit / "lcm-lora" / "pytorch_lora_weights.safetensors"), lora)
    clip = {"adapters": [{"name": "lcm", "source": {"source": str(lora), "allow_pickle": True}, "kind": "lcm"}]}
    result = run("render", script(tmp_path, **clip), "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sha256_mismatch_is_refused_by_check_and_before_loading(kit, tmp_path, monkeypatch):
    from diffusers import AnimateDiffPipeline

    base = kit / "base.safetensors"
    wrong = "0" * 64
    path = script(tmp_path, model={"source": str(base), "config": str(kit / "base"), "sha256": wrong})
    checked = run("check", path)
    assert checked.exit_code == 2
    [line] = error_lines(checked)
    assert f"expected {wrong}, got {sha256(base)}" in line and "clip c" in line and "model" in line
    loads = []
    monkeypatch.setattr(AnimateDiffPipeline, "from_single_file", classmethod(lambda cls, *a, **kw: loads.append(a)))
    rendered = run("render", path, "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert rendered.exit_code == 2 and f"expected {wrong}" in rendered.output and loads == []


def test_the_right_pin_renders_and_a_folder_pin_is_the_shell_digest(kit, tmp_path):
    folder = kit / "motion-adapter"
    shell = subprocess.run(f"cd '{folder}' && find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum "
                           "| sha256sum", shell=True, capture_output=True, text=True, check=True).stdout.split()[0]
    assert folder_digest(folder) == shell
    path = script(tmp_path, model={"source": str(kit / "base.safetensors"), "config": str(kit / "base"),
                                   "sha256": sha256(kit / "base.safetensors").upper()},
                  motion_adapter={"source": str(folder), "sha256": shell})
    result = run("render", path, "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "out" / "safety" / "c.json").read_text())["spec"]
    assert spec["motion_adapter"]["sha256"] == shell and spec["model"]["sha256"] == sha256(kit / "base.safetensors")
    changed = tmp_path / "motion"
    shutil.copytree(folder, changed)
    (changed / "config.json").write_text((folder / "config.json").read_text() + " ")
    bad = script(tmp_path, motion_adapter={"source": str(changed), "sha256": shell})
    result = run("check", bad)
    assert result.exit_code == 2 and "sha256 does not match the pin" in result.output and "folder changed" in \
        result.output


@pytest.mark.parametrize("value, message", [
    ({"source": "someone/model", "sha256": "a" * 64}, "sha256 pins a local file or folder, but someone/model is a "
                                                      "hub id; pin a hub source with revision: COMMIT"),
    ({"source": "tiny-file", "sha256": "abc"}, "sha256 must be 64 hex digits (got 'abc')"),
])
def test_bad_pins_are_one_line(kit, value, message):
    with pytest.raises(ModelError) as caught:
        resolve_source(value, field="model")
    assert message in str(caught.value)


# ---------------------------------------------------------------- .safetensors headers

def write_raw(path, header, data=b"", length=None):
    raw = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, length, expected", [
    ({"a": F32}, b"\0" * 8, 2**40, "its header claims 1099511627776 bytes (at most 104857600 allowed)"),
    ({"a": F32}, b"", 10**6, "its header claims 1000000 bytes but the file holds only"),
    (b"{not json", b"", None, "its header is not JSON"),
    ({"a": {**F32, "dtype": "Q7"}}, b"\0" * 8, None, "tensor 'a' has dtype 'Q7'"),
    ({"a": {**F32, "data_offsets": [0, 8 * 10**12]}}, b"\0" * 8, None, "outside the 8 data bytes"),
    ({"a": {**F32, "shape": [1000, 1000]}}, b"\0" * 8, None, "needs 4000000 bytes but spans 8"),
    ({"a": {**F32, "shape": [-2]}}, b"\0" * 8, None, "has shape [-2]"),
    ({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12, None, "tensors 'a' and 'b' overlap"),
])
def test_a_bad_header_is_refused_before_anything_is_read(tmp_path, monkeypatch, header, data, length, expected):
    import safetensors

    path = write_raw(tmp_path / "bad.safetensors", header, data, length)
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **kw: pytest.fail("the library was reached"))
    with pytest.raises(ModelError) as caught:
        read_safetensors_keys(path)
    line = str(caught.value)
    assert line.startswith(f"{path} is not a safe .safetensors file: ") and expected in line


def test_the_tensor_count_is_limited(tmp_path, monkeypatch):
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(5)}
    path = write_raw(tmp_path / "many.safetensors", header, b"\0" * 5)
    assert check_safetensors_header(path) == 5
    monkeypatch.setattr(weights, "MAX_TENSORS", 4)
    with pytest.raises(ModelError, match="it declares 5 tensors \\(at most 4 allowed\\)"):
        check_safetensors_header(path)


def test_every_kit_file_passes_the_header_check(kit):
    files = sorted(kit.rglob("*.safetensors"))
    assert len(files) >= 8 and all(check_safetensors_header(p) > 0 for p in files)


def test_a_bad_lora_header_is_one_check_line(kit, tmp_path):
    bad = write_raw(tmp_path / "lora.safetensors", {"a": {**F32, "dtype": "Q7"}}, b"\0" * 8)
    result = run("check", script(tmp_path, adapters=[{"name": "x", "source": str(bad)}]))
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "clip c" in line and "adapters[1] (x)" in line and "is not a safe .safetensors file" in line


# ---------------------------------------------------------------- hub commits

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_hub(kit, tmp_path, monkeypatch):
    """A hub cache holding the kit's base model as someone/tiny at COMMIT (main points at it)."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--someone--tiny"
    shutil.copytree(kit / "base", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return repo


def test_a_hub_source_resolves_to_its_cached_commit(fake_hub):
    assert hub_commit(resolve_source("someone/tiny")) == COMMIT
    assert hub_commit(resolve_source({"source": "someone/tiny", "revision": COMMIT})) == COMMIT
    assert hub_commit(resolve_source({"source": "someone/tiny", "revision": "f" * 40})) is None
    assert hub_commit(resolve_source({"source": "someone/tiny", "weight_name": "model_index.json"})) == COMMIT


@pytest.mark.parametrize("revision", [None, COMMIT])
def test_the_sidecar_records_the_commit_and_revision_pins_it(fake_hub, tmp_path, revision):
    model = "someone/tiny" if revision is None else {"source": "someone/tiny", "revision": revision}
    result = run("render", script(tmp_path, model=model), "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "out" / "safety" / "c.json").read_text())
    assert sidecar["info"]["hub_commits"] == {"model": COMMIT}


def test_a_revision_that_is_not_there_is_refused(fake_hub, tmp_path):
    model = {"source": "someone/tiny", "revision": "f" * 40}
    result = run("render", script(tmp_path, model=model), "--out", tmp_path / "out", "--device", "cpu", "--quiet")
    assert result.exit_code == 2 and f"someone/tiny@{'f' * 40} is not in the local cache" in result.output


def test_a_cached_hub_file_gets_the_header_check(fake_hub, tmp_path):
    unet = fake_hub / "snapshots" / COMMIT / "unet" / "diffusion_pytorch_model.safetensors"
    unet.unlink()  # the cache links or copies blobs: replace the file, never write through it
    write_raw(unet, {"a": {**F32, "dtype": "Q7"}}, b"\0" * 8)
    result = run("check", script(tmp_path, model="someone/tiny"))
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "clip c: model" in line and "unet/diffusion_pytorch_model.safetensors is not a safe .safetensors" in line
