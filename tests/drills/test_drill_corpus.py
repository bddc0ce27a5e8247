"""Hostile scripts: each refusal is one line (file:line:col: field: message; fix), exit code 2, no traceback, and
nothing is written — inside the output folder or through a symlink planted in it. The scripts in corpus/ are
files (expect.yaml says what each refusal must say); the cases below need a folder set up around them
(symlinks, FIFOs, big inputs) or a flag."""
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from drill_kit import TALLY

from animate.cli import main

CORPUS = Path(__file__).parent / "corpus"
EXPECT = yaml.safe_load((CORPUS / "expect.yaml").read_text(encoding="utf-8"))
TINY = {"preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1}


def tree(root: Path) -> dict:
    """Every entry under `root` (not following links) with what it is and its size: 'nothing written'."""
    if not os.path.lexists(root):
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                os.readlink(path) if path.is_symlink() else None)
    return out


def refuse(args, *, expect: str, where: str, located: bool, watch: list[Path] = ()) -> str:
    """Run `animate ARGS`; assert one refusal line holding `expect`, exit code 2, and no change under `watch`."""
    before = {str(p): tree(p) for p in watch}
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2, result.output[-2000:]
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(lines) == 1, result.output[-2000:]
    assert expect in lines[0], lines[0]
    if located:
        assert re.match(rf"error: {re.escape(where)}:\d+:\d+: \S", lines[0]), lines[0]
    else:
        assert lines[0].startswith(f"error: {where}") or where in lines[0], lines[0]
    for path in watch:
        assert tree(path) == before[str(path)], f"{path} changed"
    TALLY.drills += 1
    TALLY.faults += 1
    return lines[0]


def render_args(script: Path, out: Path, *extra: str) -> list[str]:
    return ["render", str(script), "--out", str(out), "--device", "cpu", "--quiet", *extra]


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_corpus_script_is_refused(name, tmp_path, monkeypatch):
    case = EXPECT[name]
    script = tmp_path / name
    script.write_bytes((CORPUS / name).read_bytes())
    monkeypatch.chdir(tmp_path)  # a payload writing a relative marker would write it here
    out = tmp_path / "out"
    refuse(render_args(script, out), expect=case["expect"], where=str(script), located=case.get("located", True),
           watch=[out])
    assert not out.exists()
    if case.get("marker"):
        assert not (tmp_path / case["marker"]).exists()
    if case.get("limit"):  # the limit is a default, not a wall: the flag lets the script through `check`
        result = CliRunner().invoke(main, ["check", str(script), "--out", str(out), "--device", "cpu",
                                           "--limit", case["limit"]])
        assert result.exit_code == 0, result.output[-2000:]


def test_corpus_holds_every_file():
    files = {p.name for p in CORPUS.iterdir() if p.name != "expect.yaml"}
    assert files == set(EXPECT)


# ------------------------------------------------------------------ symlinks planted in the output folder

def script_file(folder: Path, name="drill", outputs=("gif", "mp4", "png"), clips=({"name": "c", "prompt": "x"},),
                **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "defaults": {**TINY, "outputs": list(outputs), **fields},
                                    "clips": list(clips)}))
    return path


LINKS = {  # the planted link (relative to the output root) → does it point at a folder?
    "drill": True,
    "drill/c.gif": False,
    "drill/c.mp4": False,
    "drill/c": True,
    "drill/c.json": False,
    "drill/manifest.jsonl": False,
    "drill/index.html": False,
    "drill/.previews": True,
    ".frames": True,
    ".claims": True,
}


@pytest.mark.parametrize("link", list(LINKS))
def test_symlink_out_of_the_output_folder_is_refused(link, tmp_path):
    script, out, outside = script_file(tmp_path), tmp_path / "out", tmp_path / "outside"
    target = outside / "victim"
    if LINKS[link]:
        target.mkdir(parents=True)
    else:
        outside.mkdir()
        target.write_text("keep me")
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(target, target_is_directory=LINKS[link])
    refuse(render_args(script, out), expect="outside", where=str(out / link), located=False, watch=[out, outside])


def test_dangling_symlink_is_refused(tmp_path):
    script, out = script_file(tmp_path), tmp_path / "out"
    (out / "drill").mkdir(parents=True)
    (out / "drill" / "c.gif").symlink_to(tmp_path / "nowhere" / "x.gif")
    refuse(render_args(script, out), expect="outside", where=str(out / "drill" / "c.gif"), located=False,
           watch=[out])
    assert not (tmp_path / "nowhere").exists()


def test_script_named_like_a_device_is_refused(tmp_path):
    script, out = script_file(tmp_path, name="nul"), tmp_path / "out"
    refuse(render_args(script, out), expect="cannot be used as an output folder", where="script name 'nul'",
           located=False, watch=[out])


# ------------------------------------------------------------------ limits on inputs and on the whole script

def test_script_file_too_big(tmp_path):
    script, out = script_file(tmp_path), tmp_path / "out"
    script.write_text(script.read_text() + "#" * 2_100_000 + "\n")
    refuse(render_args(script, out), expect="script is 2.1 MB, more than the limit of 2 MB", where=str(script),
           located=False, watch=[out])
    result = CliRunner().invoke(main, ["check", str(script), "--out", str(out), "--limit", "script=3M"])
    assert result.exit_code == 0, result.output[-2000:]


def test_script_that_is_a_fifo(tmp_path):
    fifo, out = tmp_path / "drill.yaml", tmp_path / "out"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    refuse(render_args(fifo, out), expect="is not a regular file", where=str(fifo), located=False, watch=[out])


def pose_script(tmp_path, source) -> Path:
    return script_file(tmp_path, clips=({"name": "c", "prompt": "x", "pose": {"source": str(source)}},))


def test_pose_source_that_is_a_fifo(tmp_path):
    fifo, out = tmp_path / "pose.mp4", tmp_path / "out"
    os.mkfifo(fifo)
    script = pose_script(tmp_path, fifo)
    refuse(render_args(script, out), expect="is not a regular file", where=str(script), located=True, watch=[out])


@pytest.mark.parametrize("kind,name", [("json", "pose.json"), ("video", "pose.mp4"), ("image", "frames/0001.png")])
def test_pose_input_over_its_size_limit(kind, name, tmp_path):
    source, out = tmp_path / name, tmp_path / "out"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"\0" * 5000)  # never read: the size is refused first
    script = pose_script(tmp_path, source.parent if kind == "image" else source)
    line = refuse(render_args(script, out, "--limit", f"{kind}=4k"), expect=f"{kind} file {source.name!r} is 5 kB, "
                  "more than the limit of 4 kB", where=str(script), located=True, watch=[out])
    assert f"--limit {kind}=5k" in line


def test_init_video_that_is_a_fifo(tmp_path):
    fifo, out = tmp_path / "shot.mp4", tmp_path / "out"
    os.mkfifo(fifo)
    script = script_file(tmp_path, clips=({"name": "c", "prompt": "x", "init_video": {"source": str(fifo)}},))
    refuse(render_args(script, out), expect="init_video.source: ", where=str(script), located=True, watch=[out])


def test_keyframe_image_over_its_size_limit(tmp_path):
    image, out = tmp_path / "first.png", tmp_path / "out"
    image.write_bytes(b"\0" * 5000)
    script = script_file(tmp_path, clips=({"name": "c", "prompt": "x", "keyframes": {0: str(image)}},))
    line = refuse(render_args(script, out, "--limit", "image=4k"), expect="image file 'first.png' is 5 kB",
                  where=str(script), located=True, watch=[out])
    assert "--limit image=5k" in line


def test_renders_per_script(tmp_path):
    script, out = script_file(tmp_path, clips=[{"name": f"c{i}", "prompt": "x", "seed": list(range(600))}
                                               for i in range(2)]), tmp_path / "out"
    refuse(render_args(script, out), expect="clips: 1200 renders (clips x seeds), more than the limit of 1000",
           where=str(script), located=True, watch=[out])


def test_pixels_of_the_whole_script(tmp_path):
    script, out = script_file(tmp_path, clips=[{"name": f"c{i}", "prompt": "x"} for i in range(3)]), tmp_path / "out"
    refuse(render_args(script, out, "--limit", "total-pixels=10k"), expect="12.3 k pixels in all, more than the "
           "limit of 10 k", where=str(script), located=True, watch=[out])


@pytest.mark.parametrize("flag,expect", [("pixel=3", "unknown limit 'pixel'; did you mean `pixels`?"),
                                         ("pixels=lots", "'lots' is not an amount"),
                                         ("pixels", "expected NAME=VALUE")])
def test_a_bad_limit_flag_is_one_line(flag, expect, tmp_path):
    script, out = script_file(tmp_path), tmp_path / "out"
    refuse(render_args(script, out, "--limit", flag), expect=expect, where=f"--limit {flag}", located=False,
           watch=[out])
