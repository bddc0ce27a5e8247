"""Render keys from content, not paths: a model kit copied elsewhere, a script moved with its inputs or a moved
output root keep every clip up to date; one changed byte of a weight, config, pose, keyframe or video file renders
again. Content hashes are computed once per file and shared by processes through a cache file."""
import hashlib
import json
import os
import shutil
import threading

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from video_helpers import constant_rate, write_video

from animate.util import hashing
from animate.cli import main
from animate.run.jobs import render_identity, render_key
from animate.outputs.layout import canonical_json
from animate.spec import spec_from_fields
from animate.models.weights import source_digest

OLD = 1_600_000_000  # an mtime long past: digests of such files are remembered


def person(x):
    return {"pose_keypoints_2d": [v for px, py in [(x, 12), (x, 20), (x - 8, 20), (x + 8, 20)] + [(x, 40)] * 14
                                  for v in (px, py, 0.9)]}


def write_inputs(project):
    """The inputs a script names by relative paths: a folder of OpenPose frames, a keyframe image, a video."""
    (project / "poses").mkdir(parents=True)
    for i in range(4):
        (project / "poses" / f"f{i:02d}_keypoints.json").write_text(json.dumps({"people": [person(20 + 3 * i)]}))
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :, 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    Image.fromarray(image).save(project / "key.png")
    write_video(project / "src.mkv", constant_rate(8, 8), width=40, height=32)


def clips(kit):
    """Every kind of local source: a single file with a `config:` folder, folders, a file in a folder by
    `weight_name`, a ControlNet and a SparseCtrl folder; pose and video-to-video in one clip, keyframes in another."""
    defaults = {"model": {"source": f"{kit}/base.safetensors", "config": f"{kit}/base"},
                "motion_adapter": f"{kit}/motion-adapter",
                "adapters": [{"name": "lcm", "source": f"{kit}/lcm-lora/pytorch_lora_weights.safetensors",
                              "kind": "lcm"},
                             {"name": "zoom", "source": {"source": f"{kit}/motion-lora-zoom-in",
                                                         "weight_name": "diffusion_pytorch_model.safetensors"},
                              "weight": 0.5}],
                "scheduler": "lcm", "steps": 1, "guidance": 1.0, "frames": 4, "fps": 8.0, "width": 32, "height": 32,
                "seed": 3, "outputs": ["png"]}
    return defaults, [
        {"name": "dance", "prompt": "a dancer",
         "pose": {"source": "poses", "controlnet": f"{kit}/controlnet-openpose", "canvas": [64, 64]},
         "init_video": {"source": "src.mkv", "strength": 0.5}},
        {"name": "still", "prompt": "a boat", "keyframes": {0: "key.png"}, "sparsectrl": f"{kit}/sparsectrl-rgb"}]


def specs(kit, project):
    defaults, items = clips(kit)
    return [spec_from_fields({**defaults, **clip}, name=clip["name"], base_dir=project)[0] for clip in items]


@pytest.fixture
def copies(kit, tmp_path):
    """The kit copied twice (the second `cp -a`-like, the first with fresh mtimes) and the inputs written twice."""
    a, b = tmp_path / "a", tmp_path / "elsewhere" / "b"
    shutil.copytree(kit, a / "kit", copy_function=shutil.copy)
    shutil.copytree(a / "kit", b / "models" / "renamed-kit", symlinks=True)
    for project in (a / "p", b / "project"):
        write_inputs(project)
    shutil.copy2(a / "p" / "src.mkv", b / "project" / "src.mkv")  # an encoder may not write the same bytes twice
    return (a / "kit", a / "p"), (b / "models" / "renamed-kit", b / "project")


def test_copies_elsewhere_have_the_same_keys_and_no_path_is_in_them(copies, tmp_path, kit):
    (kit_a, project_a), (kit_b, project_b) = copies
    here, there = specs(kit_a, project_a), specs(kit_b, project_b)
    assert [render_key(s, "fp32") for s in here] == [render_key(s, "fp32") for s in there]
    for spec in here:
        text = canonical_json(render_identity(spec, "fp32"))
        assert str(tmp_path) not in text and str(kit) not in text and "kit" not in text, text
        assert '"content":null' not in text  # every local thing was hashed
    dance = render_identity(here[0], "fp32")
    # A source's content is the digest its `sha256:` pin names (`sha256sum FILE`, or the folder's listing).
    assert dance["model"]["content"] == hashlib.sha256((kit_a / "base.safetensors").read_bytes()).hexdigest()
    assert dance["motion_adapter"]["content"] == source_digest(here[0].motion_adapter)
    # Sources of other kinds or hub ids are still told apart.
    hub = spec_from_fields({**clips(kit_a)[0], "prompt": "a boat", "model": "epicrealism"})[0]
    assert render_identity(hub, "fp32")["model"] == {"kind": "hub", "ref": "emilianJR/epiCRealism"}


@pytest.mark.parametrize("which,clip", [
    ("kit/base.safetensors", 0), ("kit/base/unet/config.json", 0), ("kit/motion-adapter/config.json", 0),
    ("kit/lcm-lora/pytorch_lora_weights.safetensors", 0),
    ("kit/motion-lora-zoom-in/diffusion_pytorch_model.safetensors", 0),
    ("kit/controlnet-openpose/diffusion_pytorch_model.safetensors", 0), ("p/poses/f02_keypoints.json", 0),
    ("p/src.mkv", 0), ("kit/sparsectrl-rgb/config.json", 1), ("p/key.png", 1)])
def test_one_changed_byte_changes_the_key(copies, which, clip):
    (kit, project), _ = copies
    path = kit.parent / which
    before = render_key(specs(kit, project)[clip], "fp32")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size, same inode, maybe even the same mtime tick
    path.write_bytes(bytes(data))
    assert render_key(specs(kit, project)[clip], "fp32") != before
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert render_key(specs(kit, project)[clip], "fp32") == before


# ---------------------------------------------------------------- the cached hasher

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty hash cache, as a fresh process on a fresh machine sees it."""
    monkeypatch.setenv("ANIMATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hashing, "_digests", hashing._Digests())
    return tmp_path / "cache" / hashing.CACHE_NAME


def old_file(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))
    return path


def test_a_digest_is_remembered_across_processes_until_the_file_changes(tmp_path, cache, monkeypatch):
    weights = old_file(tmp_path / "m" / "w.safetensors", b"weights")
    assert hashing.file_sha256(weights) == hashlib.sha256(b"weights").hexdigest()
    entry = json.loads(cache.read_text())["files"][os.path.realpath(weights)]
    st = weights.stat()
    assert entry == [st.st_size, st.st_mtime_ns, st.st_ino, hashlib.sha256(b"weights").hexdigest()]

    # Another process reads the cache instead of the file: a planted digest proves the file is not read again.
    entry[3] = "f" * 64
    cache.write_text(json.dumps({"version": 1, "files": {os.path.realpath(weights): entry}}))
    monkeypatch.setattr(hashing, "_digests", hashing._Digests())
    assert hashing.file_sha256(weights) == "f" * 64
    assert hashing.folder_sha256(weights.parent) == hashlib.sha256(f"{'f' * 64}  ./w.safetensors\n".encode()).hexdigest()

    os.utime(weights, (OLD + 1, OLD + 1))  # touched: same bytes, hashed again
    assert hashing.file_sha256(weights) == hashlib.sha256(b"weights").hexdigest()


def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path, cache):
    cache.parent.mkdir(parents=True)
    cache.write_text('{"version": 1, "files": {"/x": [1, 2')
    weights = old_file(tmp_path / "w.bin", b"abc")
    assert hashing.file_sha256(weights) == hashlib.sha256(b"abc").hexdigest()
    assert list(json.loads(cache.read_text())["files"]) == [os.path.realpath(weights)]
    cache.write_text(json.dumps({"version": 1, "files": {os.path.realpath(weights): [1, 2, "x", "nothex"]}}))
    fresh = hashing._Digests()
    assert fresh.lookup(os.path.realpath(weights), hashing._stamp(weights.stat())) is None


def test_a_file_written_just_now_is_not_remembered(tmp_path, cache):
    fresh = tmp_path / "new.safetensors"
    fresh.write_bytes(b"x")  # it could change again within its mtime tick with the same size and inode
    assert hashing.file_sha256(fresh) == hashlib.sha256(b"x").hexdigest()
    assert not cache.exists()
    fresh.write_bytes(b"y")
    assert hashing.file_sha256(fresh) == hashlib.sha256(b"y").hexdigest()


def test_processes_hashing_at_once_each_keep_their_digests(tmp_path, cache):
    files = [old_file(tmp_path / f"f{i}", bytes([i]) * 100) for i in range(8)]
    threads = [threading.Thread(target=hashing.file_sha256, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    known = json.loads(cache.read_text())["files"]
    assert {os.path.realpath(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == \
        {k: v[3] for k, v in known.items()}
    assert not [p for p in cache.parent.iterdir() if ".part" in p.name]


def test_the_cache_keeps_the_newest_paths_and_an_unwritable_one_costs_nothing(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(hashing, "MAX_ENTRIES", 2)
    files = [old_file(tmp_path / f"f{i}", bytes([i])) for i in range(3)]
    for f in files:
        hashing.file_sha256(f)
    assert list(json.loads(cache.read_text())["files"]) == [os.path.realpath(f) for f in files[1:]]
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ANIMATE_CACHE", str(tmp_path / "a-file" / "cache"))  # cannot even be made
    other = old_file(tmp_path / "g", b"g")
    assert hashing.file_sha256(other) == hashlib.sha256(b"g").hexdigest()


def test_a_missing_folder_is_an_error_not_an_empty_listing(tmp_path):
    with pytest.raises(FileNotFoundError):
        hashing.content_hash(tmp_path / "gone")


# ---------------------------------------------------------------- the acceptance: move everything, render nothing

def write_script(path, kit):
    defaults, items = clips(kit)
    path.write_text(yaml.safe_dump({"version": 1, "defaults": defaults, "clips": items}))
    return path


def cli(*args):
    result = CliRunner().invoke(main, [*map(str, args), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_moved_script_copied_kit_and_moved_output_root_are_up_to_date(kit, tmp_path, monkeypatch):
    from diffusers import AnimateDiffSparseControlNetPipeline, AnimateDiffVideoToVideoControlNetPipeline

    kit_a, project = tmp_path / "a" / "kit", tmp_path / "a" / "project"
    shutil.copytree(kit, kit_a, symlinks=True)
    write_inputs(project)
    out = project / "outputs"
    cli("render", write_script(project / "s.yaml", kit_a), "--out", out, "--quiet")

    moved, kit_b = tmp_path / "b" / "moved-project", tmp_path / "c" / "models"
    moved.parent.mkdir()
    shutil.move(project, moved)  # the script, its inputs and its output root
    shutil.copytree(kit_a, kit_b, symlinks=True)  # `cp -a`
    shutil.rmtree(kit_a)
    write_script(moved / "s.yaml", kit_b)  # the script points at the copy

    calls = []
    for pipe in (AnimateDiffSparseControlNetPipeline, AnimateDiffVideoToVideoControlNetPipeline):
        monkeypatch.setattr(pipe, "__call__", lambda self, *a, **kw: calls.append(kw))
    frames = sorted((moved / "outputs" / "s").glob("*/frame_*.png"))
    before = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in frames]
    checked = cli("check", moved / "s.yaml", "--out", moved / "outputs")
    assert "2 clip(s) on cpu (fp32): 0 to render, 0 to encode from stored frames" in checked, checked
    # The sidecars name the old paths: they are rewritten, nothing is rendered or encoded.
    assert checked.count("rewrite the sidecar only") == 2, checked
    cli("render", moved / "s.yaml", "--out", moved / "outputs", "--quiet")
    assert calls == [] and len(frames) == 8
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in frames] == before  # not even encoded again
    sidecar = json.loads((moved / "outputs" / "s" / "dance.json").read_text())
    assert str(kit_b) in json.dumps(sidecar["spec"]["model"]) and str(moved) in sidecar["spec"]["pose"]["source"]
    again = cli("check", moved / "s.yaml", "--out", moved / "outputs")
    assert "0 to render, 0 to encode from stored frames, 2 up to date" in again, again
