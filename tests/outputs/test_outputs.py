"""Output paths, spec hashes, sidecars and the manifest."""
import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animate.errors import ConfigError
from animate.outputs.layout import (
    Manifest, OutputLayout, build_sidecar, file_sha256, package_versions, safe_name,
    write_sidecar,
)
from animate.outputs.layout import hash_resolved as spec_hash

NAME_CHARS = string.ascii_lowercase + string.digits + "._-"


@pytest.mark.parametrize("name", ["castle", "a", "seasons-v2", "x.y_z", "0", "a" * 64, "a..b"])
def test_safe_name_accepts_valid_names(name):
    assert safe_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../etc", "/abs", "Castle", "a b", "a/b", "a\\b", "a\0b",
                                  "-lead", ".hidden", "_x", "a" * 65, "café", 12, None])
def test_safe_name_rejects_with_one_line_and_a_fix(name):
    with pytest.raises(ConfigError) as info:
        safe_name(name)
    text = str(info.value)
    assert "\n" not in text
    assert repr(name)[:20] in text
    assert "for example" in text


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=NAME_CHARS + "/\\\0 .Aé", max_size=70),
                st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)))
def test_accepted_names_stay_inside_the_root_and_are_idempotent(tmp_path_factory, text):
    layout = OutputLayout(tmp_path_factory.getbasetemp() / "out", "script")
    try:
        name = safe_name(text)
    except ConfigError:
        return
    assert safe_name(name) == name
    root = layout.root.resolve()
    for path in (layout.file(name, "gif"), layout.folder(name), layout.sidecar(name),
                 layout.file(layout.stem(name, 7, True), "mp4")):
        assert path.is_relative_to(root) and path != root
        assert path.parent == root


def test_layout_paths(tmp_path):
    layout = OutputLayout(tmp_path, "demo")
    assert layout.stem("castle", 42, multi_seed=False) == "castle"
    assert layout.stem("castle", 42, multi_seed=True) == "castle-s42"
    root = (tmp_path / "demo").resolve()
    assert layout.file("castle-s42", "gif") == root / "castle-s42.gif"
    assert layout.folder("castle") == root / "castle"
    assert layout.sidecar("castle") == root / "castle.json"
    assert layout.manifest == root / "manifest.jsonl"
    assert layout.gallery == root / "index.html"
    assert layout.relative(root / "castle.gif") == "castle.gif"


@pytest.mark.parametrize("stem, ext", [("../x", "gif"), ("castle", "../gif"), ("castle", "g/f"),
                                       ("castle", ""), ("Castle", "gif")])
def test_layout_rejects_bad_stems_and_extensions(tmp_path, stem, ext):
    with pytest.raises(ConfigError):
        OutputLayout(tmp_path, "demo").file(stem, ext)


@pytest.mark.parametrize("stem", ["", "..", "a/b", "/abs"])
def test_layout_rejects_bad_script_stems(tmp_path, stem):
    with pytest.raises(ConfigError):
        OutputLayout(tmp_path, stem)


def test_symlink_escaping_the_root_is_refused(tmp_path):
    layout = OutputLayout(tmp_path / "out", "demo")
    layout.prepare()
    outside = tmp_path / "elsewhere.gif"
    outside.write_bytes(b"x")
    (layout.root / "castle.gif").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside"):
        layout.file("castle", "gif")
    (layout.root / "pngs").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ConfigError):
        layout.folder("pngs")


def test_symlinked_out_root_is_fine(tmp_path):
    (tmp_path / "big").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "big", target_is_directory=True)
    layout = OutputLayout(tmp_path / "out", "demo")
    assert layout.file("castle", "gif") == (tmp_path / "big" / "demo" / "castle.gif").resolve()


def test_prepare_sweeps_partials(tmp_path):
    layout = OutputLayout(tmp_path, "demo")
    layout.root.mkdir(parents=True)
    old = layout.root / ".castle.1234abcd.part.gif"  # an older version's name: no writer in it
    old.write_bytes(b"half")
    os.utime(old, (1, 1))
    assert layout.prepare() == 1
    assert list(layout.root.iterdir()) == []


def test_sweep_keeps_temp_files_of_running_writers(tmp_path):
    import subprocess
    import sys

    from animate.util.atomic import _host_tag

    layout = OutputLayout(tmp_path, "demo")
    layout.root.mkdir(parents=True)
    live = layout.root / f".castle.w{_host_tag()}-{os.getpid()}-0123abcd.part.gif"  # this process: running
    live.write_bytes(b"being written")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = layout.root / f".boat.w{_host_tag()}-{gone.stdout.strip()}-0123abcd.part.mp4"
    dead.write_bytes(b"left by a killed run")
    fresh_foreign = layout.root / ".tree.wffffff-1-0123abcd.part.gif"  # another host's writer, recent
    fresh_foreign.write_bytes(b"x")
    assert layout.prepare() == 1
    assert live.exists() and fresh_foreign.exists() and not dead.exists()


def test_spec_hash_is_stable_and_ignores_run_details():
    a = {"prompt": {"0": "a", "8": "b"}, "guidance": 1.5, "steps": 6, "path": Path("m/x.safetensors"),
         "timings": {"total": 1.0}, "device": "cpu"}
    b = {"device": "cuda", "timings": {"total": 9.0}, "path": Path("m/x.safetensors"), "steps": 6,
         "guidance": 1.5, "prompt": {"8": "b", "0": "a"}}
    assert spec_hash(a) == spec_hash(b)
    assert len(spec_hash(a)) == 64
    assert spec_hash(a) != spec_hash({**a, "guidance": 1.5000001})
    assert spec_hash(a) != spec_hash({**a, "steps": 7})


def test_spec_hash_pinned():
    # A change of canonical form would re-render every user's clips: pin it.
    import hashlib
    expected = hashlib.sha256(b'{"a":[1,"x"],"b":0.1}').hexdigest()
    assert spec_hash({"b": 0.1, "a": [1, "x"], "timings": {}}) == expected


def test_file_sha256_caches_on_size_and_mtime(tmp_path):
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"abc")
    first = file_sha256(f)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1, 1))
    assert file_sha256(f) != first


def test_sidecar_is_complete_indented_json(tmp_path):
    layout = OutputLayout(tmp_path, "demo")
    resolved = {"name": "castle", "seed": 42, "prompt": "é castle", "steps": 6, "model": Path("m")}
    data = build_sidecar(resolved, models={"model": {"source": "m", "revision": "abc"}},
                         device="cpu", timings={"total_s": 1.25})
    path = write_sidecar(layout.sidecar("castle"), data)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("{\n  ") and "é castle" in text
    back = json.loads(text)
    assert back["spec"]["model"] == "m" and back["spec_hash"] == spec_hash(resolved)
    assert back["timings"] == {"total_s": 1.25} and back["device"] == "cpu"
    assert set(back["packages"]) >= {"torch", "diffusers", "transformers", "peft", "numpy", "animate"}
    assert [p.name for p in layout.root.iterdir()] == ["castle.json"]  # no temp file left


def test_package_versions_reports_torch():
    import torch
    assert package_versions()["torch"] in (torch.__version__, torch.__version__.split("+")[0])


def test_manifest_latest_entry_wins_and_is_done(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    gif = tmp_path / "castle.gif"
    gif.write_bytes(b"GIF89a....")
    m.record("castle.gif", "h1", [gif])
    m.record("castle.gif", "h2", [gif])
    assert m.entries()["castle.gif"]["spec_hash"] == "h2"
    assert m.is_done("castle.gif", "h2", [gif])
    assert m.is_done("castle.gif", "h2", ["castle.gif"])
    assert m.is_done("castle.gif", "h2")
    assert not m.is_done("castle.gif", "h1", [gif])  # spec changed since
    assert not m.is_done("other.gif", "h2", [gif])
    gif.write_bytes(b"GIF89a")  # truncated by something else
    assert not m.is_done("castle.gif", "h2", [gif])
    gif.unlink()
    assert not m.is_done("castle.gif", "h2")


def test_manifest_unrecorded_file_is_not_done(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    (tmp_path / "a.gif").write_bytes(b"1")
    (tmp_path / "a.mp4").write_bytes(b"2")
    m.record("a", "h", [tmp_path / "a.gif"])
    assert not m.is_done("a", "h", [tmp_path / "a.gif", tmp_path / "a.mp4"])
    assert not m.is_done("a", "h", [tmp_path.parent / "x.gif"])


def test_manifest_png_folder_sizes(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    folder = tmp_path / "castle"
    folder.mkdir()
    for i in range(3):
        (folder / f"frame_{i:05d}.png").write_bytes(b"p" * (i + 1))
    m.record("castle/png", "h", [folder])
    assert m.entries()["castle/png"]["files"] == [{"path": "castle", "size": 6}]
    assert m.is_done("castle/png", "h")
    (folder / "frame_00002.png").unlink()
    assert not m.is_done("castle/png", "h")


def test_manifest_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    (tmp_path / "a.gif").write_bytes(b"1")
    m.record("a", "h", ["a.gif"])
    with open(path, "ab") as fh:  # a crash mid-write
        fh.write(b'{"key": "b", "spec_ha')
    assert set(m.entries()) == {"a"} and m.skipped == 1
    (tmp_path / "b.gif").write_bytes(b"2")
    m.record("b", "h", ["b.gif"])
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["key"] == "b"
    fresh = Manifest(path)
    assert set(fresh.entries()) == {"a", "b"} and fresh.is_done("b", "h")


def test_manifest_missing_and_bad_entries(tmp_path):
    m = Manifest(tmp_path / "sub" / "manifest.jsonl")
    assert m.entries() == {} and not m.is_done("a", "h", [])
    with pytest.raises(ValueError):
        m.append({"spec_hash": "h"})
    m.path.parent.mkdir()
    m.path.write_text('[1, 2]\n\n{"key": 3}\n{"key": "k", "spec_hash": "h", "files": []}\n')
    assert list(m.entries()) == ["k"] and m.skipped == 2
    assert not m.is_done("k", "h")  # nothing recorded, nothing to prove


def test_concurrent_appends_never_interleave(tmp_path):
    # Ray workers may share a manifest; each append is one locked write of one whole line.
    from concurrent.futures import ThreadPoolExecutor
    m = Manifest(tmp_path / "manifest.jsonl")
    prompt = "x" * 5000  # larger than a pipe buffer: a torn write would show

    def worker(n):
        for i in range(25):
            Manifest(m.path).append({"key": f"w{n}-{i}", "spec_hash": "h", "prompt": prompt})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    assert len(m.entries()) == 100 and m.skipped == 0


@pytest.mark.parametrize("taken", ["demo", ".frames", ".claims"])
@pytest.mark.parametrize("command", ["check", "render"])
def test_a_file_where_an_output_folder_goes_is_one_line(kit, tmp_path, command, taken):
    from click.testing import CliRunner

    from animate.cli import main
    from cli_helpers import assert_one_error_line

    script = tmp_path / "demo.yaml"
    script.write_text("version: 1\ndefaults: {preset: tiny, frames: 2, width: 16, height: 16}\n"
                      "clips:\n  - {name: a, prompt: x}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / taken).write_text("someone's notes")
    result = CliRunner().invoke(main, [command, str(script), "--out", str(out)])
    assert_one_error_line(result, tmp_path / "nothing", f"--out {out}", f"{out / taken} is a file",
                          "move the file away")
    assert sorted(p.name for p in out.rglob("*")) == [taken]  # nothing written beside it
    assert (out / taken).read_text() == "someone's notes"
