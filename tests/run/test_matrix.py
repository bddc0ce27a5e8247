"""The combination matrix (tests/matrix_helpers.py): every clip feature alone and in every pair either renders
completely or is refused by `animate check` with one line naming both fields, `animate render` refusing it the same
way before anything loads. Every combination is first checked on its own (a one-clip script); the accepted ones are
then rendered together, one script per model stack, so each pipeline is built once."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner
from matrix_helpers import (BASE, BASE_FIELDS, DERIVED, FEATURES, MUST_RENDER, SDXL, TALLY, Combo, combinations, counts,
                            reason, refused_table, write_inputs, write_script)

from animate.cli import main

COMBOS = combinations()
DOC = Path(__file__).resolve().parents[2] / "docs" / "matrix.md"
CORPUS = Path(__file__).resolve().parents[1] / "drills" / "corpus"


class Loading(BaseException):
    """Raised where a model would load: `render` got past every check (BaseException: no handler swallows it)."""


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def render_until_load(script: Path, out: Path) -> tuple[int | None, list[str], str]:
    """`animate render SCRIPT` stopped where the first model would load: (exit code or None when it got there, error
    lines, output)."""
    from animate.rendering.renderer import Renderer

    with mock.patch.object(Renderer, "stack_for", side_effect=Loading):
        try:
            result = invoke("render", script, "--out", out, "--device", "cpu", "--quiet")
        except Loading:
            return None, [], ""
    return result.exit_code, error_lines(result.output), result.output


# ---------------------------------------------------------------- the run, once per module

class MatrixRun:
    """Checks every combination on its own, renders the accepted ones, and keeps what each did."""

    def __init__(self, root: Path):
        self.root = root
        self.out = root / "out"
        self.check: dict[str, tuple[int, list[str], str]] = {}  # combo → (exit code, error lines, output)
        self.render_refusal: dict[str, tuple[int | None, list[str], str]] = {}
        self.scripts: dict[str, Path] = {}  # combo → its one-clip script
        self.runs: dict[str, dict] = {}  # script stem → {"exit_code", "output", "events", "failed": {stem: line}}
        self.run_of: dict[str, str] = {}  # combo → the script stem it rendered in
        self.batch_check: dict[str, tuple[int, str]] = {}  # script stem → `check` of the whole script

    def check_all(self, combos: list[Combo]) -> None:
        for combo in combos:
            script = write_script(self.root / f"{combo.clip_name}.yaml", [combo.clip()])
            self.scripts[combo.name] = script
            result = invoke("check", script, "--out", self.root / "check-out")
            self.check[combo.name] = (result.exit_code, error_lines(result.output), result.output)
            if result.exit_code != 0:  # refused: `render` must refuse it the same way, before anything loads
                self.render_refusal[combo.name] = render_until_load(script, self.root / "refused-out")

    def render_accepted(self, combos: list[Combo]) -> None:
        """One script per model stack; a combination with a known defect renders in a script of its own kind, so
        the defect cannot take the others down."""
        batches: dict[str, list[Combo]] = {}
        for combo in combos:
            if self.check[combo.name][0] == 0:
                key = combo.stack + ("-known-" + re.sub(r"\W+", "-", combo.known)[:40] if combo.known else "")
                batches.setdefault(key, []).append(combo)
        for key, batch in batches.items():
            stem = f"matrix-{key}"
            script = write_script(self.root / f"{stem}.yaml", [c.clip() for c in batch])
            checked = invoke("check", script, "--out", self.out)
            self.batch_check[stem] = (checked.exit_code, checked.output)
            try:
                result = invoke("render", script, "--out", self.out, "--device", "cpu", "--json")
                output, code = result.output, result.exit_code
                crash = result.exception if not isinstance(result.exception, SystemExit) else None
            except Exception as exc:  # noqa: BLE001 - a crash is a finding for every combination of the script
                output, code, crash = "", None, exc
            events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            failed = {e["clip"]: e.get("message", "") for e in events if e.get("event") == "error" and e.get("clip")}
            self.runs[stem] = {"exit_code": code, "output": output, "events": events, "failed": failed,
                               "crash": repr(crash) if crash else None}
            for combo in batch:
                self.run_of[combo.name] = stem


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, kit):
    root = tmp_path_factory.mktemp("matrix")
    write_inputs(root)
    run = MatrixRun(root)
    run.check_all(COMBOS)
    run.render_accepted(COMBOS)
    return run


# ---------------------------------------------------------------- one test per combination

def _stems(combo: Combo) -> list[str]:
    seeds = combo.clip().get("seed")
    return [f"{combo.clip_name}-s{s}" for s in seeds] if isinstance(seeds, list) else [combo.clip_name]


def refusal_problems(run: MatrixRun, combo: Combo) -> list[str]:
    code, lines, output = run.check[combo.name]
    problems = []
    if code != 2 or len(lines) != 1 or "Traceback" in output:
        return [f"`check` exited {code} with {len(lines)} error lines (one expected, exit 2): {output[-1500:]}"]
    line = lines[0]
    for feature in combo.features:
        if not any(re.search(rf"\b{re.escape(word)}\b", line) for word in feature.words):
            problems.append(f"the refusal does not name {feature.name} ({' or '.join(feature.words)}): {line}")
    r_code, r_lines, r_output = run.render_refusal[combo.name]
    if (r_code, r_lines) != (code, lines):
        problems.append(f"`render` disagrees with `check`: exit {r_code} (got to loading: {r_code is None}), "
                        f"lines {r_lines} vs {lines}")
    return problems


def decodes(path: Path) -> int:
    """Frames in an output, read with a real decoder (0 when it cannot be read)."""
    from PIL import Image, ImageSequence

    if path.is_dir():
        files = sorted(path.glob("frame_*.png"))
        for f in files:
            with Image.open(f) as im:
                im.load()
        return len(files)
    if path.suffix in (".gif", ".webp", ".png"):
        with Image.open(path) as im:
            return sum(1 for frame in ImageSequence.Iterator(im) if frame.load() is not None or True)
    import av

    with av.open(str(path)) as container:
        return sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="rgb24").size)


def render_problems(run: MatrixRun, combo: Combo, tmp_path: Path) -> list[str]:
    from animate.outputs.layout import Manifest

    stem = run.run_of.get(combo.name)
    if stem is None:
        return ["accepted by `check` but never rendered"]
    outcome = run.runs[stem]
    root = run.out / stem
    problems = []
    if outcome["crash"]:
        problems.append(f"the render of {stem}.yaml crashed: {outcome['crash']}")
    code, _, _ = run.check[combo.name]
    # `render` of the same one-clip script gets past every check to the first model load, as `check` did.
    r_code, r_lines, r_output = render_until_load(run.scripts[combo.name], tmp_path / "until-load")
    if r_code is not None:
        problems.append(f"`check` exits 0 but `render` stops before loading with exit {r_code}: "
                        f"{r_lines or r_output[-800:]}")
    entries = Manifest(root / "manifest.jsonl").entries()
    gallery = (root / "index.html").read_text(encoding="utf-8") if (root / "index.html").is_file() else ""
    for clip in _stems(combo):
        if clip in outcome["failed"]:
            problems.append(f"{clip} failed: {outcome['failed'][clip]}")
            continue
        entry, sidecar = entries.get(clip), root / f"{clip}.json"
        if entry is None or not sidecar.is_file():
            problems.append(f"{clip}: no manifest line or sidecar (render exit {outcome['exit_code']}: "
                            f"{outcome['output'][-600:]})")
            continue
        if f'"{clip}.json"' not in gallery and f"{clip}.json" not in gallery:
            problems.append(f"{clip}: not in the gallery")
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        frames = record["spec"]["frames"]
        for fmt, rel in record["outputs"].items():
            try:
                count = decodes(root / rel)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
                problems.append(f"{clip}: {fmt} output {rel} does not decode: {exc!r}")
                continue
            if count < (1 if fmt == "sheet" else min(frames, 2)):
                problems.append(f"{clip}: {fmt} output {rel} holds {count} frames")
        problems += encode_problems(sidecar, tmp_path / clip)
        problems += replay_problems(sidecar, record, run.out, tmp_path / clip)
    return problems


def encode_problems(sidecar: Path, folder: Path) -> list[str]:
    result = invoke("encode", sidecar, "--format", "webp", "--out", folder / "encoded")
    written = folder / "encoded" / f"{sidecar.stem}.webp"
    if result.exit_code != 0 or not written.is_file():
        return [f"`animate encode {sidecar.name}` failed ({result.exit_code}): {result.output[-600:]}"]
    return [] if decodes(written) >= 2 else [f"`animate encode {sidecar.name}` wrote an empty clip"]


def replay_problems(sidecar: Path, record: dict, out: Path, folder: Path) -> list[str]:
    """`animate replay SIDECAR`, with the denoising itself replaced by the frames the matrix rendered for the same
    render key: the spec read back from the sidecar must be the one rendered (same key), and replay then plans,
    encodes and records it as a render does."""
    from animate.outputs.framestore import FrameStore
    from animate.rendering import renderer as renderer_module
    from animate.run import runner as runner_module
    from animate.run.jobs import render_key

    store, original = FrameStore(out), record["render_key"]

    class StoredFrames:
        def __init__(self, device=None, dtype=None, **_):
            self.device, self.dtype, self.on_step = "cpu", renderer_module.pick_dtype("cpu", None), None

        def render(self, spec):
            key = render_key(spec, "fp32")
            assert key == original, f"replayed spec has render key {key}, the sidecar's is {original}"
            return renderer_module.ClipResult(frames=store.load(key), spec=spec, timings={}, info={"device": "cpu"})

    with mock.patch.object(runner_module, "Renderer", StoredFrames):  # where the runner looks it up
        result = invoke("replay", sidecar, "--out", folder / "replayed", "--format", "png", "--device", "cpu", "-q")
    written = folder / "replayed" / "replay" / sidecar.stem
    if result.exit_code != 0 or not written.is_dir():
        why = result.exception if result.exception and not isinstance(result.exception, SystemExit) else ""
        return [f"`animate replay {sidecar.name}` failed ({result.exit_code}): {why!r} {result.output[-600:]}"]
    return [] if decodes(written) == record["spec"]["frames"] else [f"replay of {sidecar.name} lost frames"]


def _param(combo: Combo):
    marks = [pytest.mark.xfail(strict=True, reason=combo.known)] if combo.known else []
    return pytest.param(combo, id=combo.name, marks=marks)


@pytest.mark.parametrize("combo", [_param(c) for c in COMBOS])
def test_combination(matrix, combo, tmp_path):
    refused = matrix.check[combo.name][0] != 0
    if refused and len(combo.features) == 1:
        code, lines, output = matrix.check[combo.name]
        problems = [f"{combo.name} alone is refused (exit {code}): {lines or output[-1500:]}"]
    elif refused:
        problems = refusal_problems(matrix, combo)
    else:
        problems = render_problems(matrix, combo, tmp_path)
    outcome = "refused" if refused else "rendered"
    if problems:
        outcome = "known" if combo.known else "defect"
    MATRIX_OUTCOMES[combo.name] = outcome
    assert not problems, "\n".join(problems)


MATRIX_OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _tally():
    yield
    TALLY.add(counts(MATRIX_OUTCOMES))


# ---------------------------------------------------------------- the list covers the schema; the doc is current

def test_every_clip_field_is_in_the_matrix():
    from dataclasses import fields

    from animate.spec import ClipSpec
    from animate.spec.schema import ClipModel

    covered = BASE_FIELDS | {name for feature in FEATURES for name in feature.fields}
    missing = (set(ClipModel.model_fields) | {f.name for f in fields(ClipSpec)}) - covered - DERIVED
    assert not missing, f"clip fields with no feature in tests/matrix_helpers.py FEATURES: {sorted(missing)}"
    unknown = covered - set(ClipModel.model_fields)
    assert not unknown, f"matrix features name fields the schema does not have: {sorted(unknown)}"


def test_refused_pairs_doc_is_current(matrix):
    refusals = {c.name: reason(matrix.check[c.name][1][0]) for c in COMBOS
                if matrix.check[c.name][0] == 2 and len(matrix.check[c.name][1]) == 1}
    text = refused_table(refusals)
    if os.environ.get("ANIMATE_WRITE_MATRIX_DOC"):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == text, \
        "docs/matrix.md is out of date: rerun with ANIMATE_WRITE_MATRIX_DOC=1"


def test_check_accepts_the_scripts_render_ran(matrix):
    for stem, (code, output) in matrix.batch_check.items():
        assert code == 0 and not error_lines(output), output[-2000:]


def test_pairs_editors_rely_on_render(matrix):
    for a, b in MUST_RENDER:
        assert matrix.check[f"{a}+{b}"][0] == 0, matrix.check[f"{a}+{b}"][1]  # the rest: test_combination


def test_combinations_cover_every_variant_and_pair():
    names = {c.name for c in COMBOS}
    assert all(f.name in names for f in FEATURES)  # alone
    groups = {f.group for f in FEATURES}
    paired = {frozenset(f.group for f in c.features) for c in COMBOS if len(c.features) == 2}
    assert len(paired) == len(groups) * (len(groups) - 1) // 2
    in_pairs = {f.name for c in COMBOS if len(c.features) == 2 for f in c.features}
    assert in_pairs == {f.name for f in FEATURES}, "every variant meets other features"
    assert any(c.stack == SDXL for c in COMBOS)


# ---------------------------------------------------------------- check and render agree before anything loads

CORPUS_SCRIPTS = sorted(p.name for p in CORPUS.iterdir() if p.name != "expect.yaml")


@pytest.mark.parametrize("name", CORPUS_SCRIPTS)
def test_check_and_render_agree_on_the_corpus(name, tmp_path, monkeypatch):
    script = tmp_path / name
    script.write_bytes((CORPUS / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    checked = invoke("check", script, "--out", tmp_path / "out")
    code, lines, output = render_until_load(script, tmp_path / "out")
    assert (code, lines) == (checked.exit_code, error_lines(checked.output)), (checked.output, output)


def _pose_folder(folder: Path, count: int) -> str:
    from PIL import Image

    folder.mkdir()
    for k in range(count):
        image = np.zeros((32, 32, 3), np.uint8)
        image[4:28, 10 + k % 4:14 + k % 4] = 255
        Image.fromarray(image).save(folder / f"{k:03d}.png")
    return folder.name


def _pose_json(path: Path) -> str:
    neck = [0.0] * 54
    neck[3:6], neck[6:9] = [40.0, 30.0, 0.9], [20.0, 30.0, 0.9]  # pixels of an image of unknown size
    path.write_text(json.dumps([{"people": [{"pose_keypoints_2d": neck}]}] * 2), encoding="utf-8")
    return path.name


# Scripts `check` once let through and `render` refused before loading: (clip fields, script-level fields, what the
# one line says).
DISAGREED = {
    "pose-folder-of-40-frames": (lambda d: {"frames": 8, "pose": {"source": _pose_folder(d / "poses", 40),
                                                                  "controlnet": "tiny"}}, {},
                                 "has 40 frames but the clip has 8"),
    "pose-pixels-without-canvas": (lambda d: {"pose": {"source": _pose_json(d / "pose.json"), "controlnet": "tiny"}},
                                   {}, "keypoints are in pixels but the image size is unknown"),
    "clip-named-reel": (lambda d: {"name": "reel"}, {"outputs": ["reel"]}, "collide with the script's reel"),
    "refine-without-a-step": (lambda d: {"refine": {"strength": 0.5}, "init_video": {
        "source": _pose_folder(d / "frames", 8), "fps": 8, "strength": 1.0, "enforce_inference_steps": False}},
                              {}, "runs no denoising step"),
}


@pytest.mark.parametrize("case", sorted(DISAGREED))
def test_check_refuses_what_render_refuses(case, kit, tmp_path):
    clip, top, expect = DISAGREED[case]
    doc = {"version": 1, "defaults": dict(BASE), "clips": [{"name": "c", "prompt": "a dancer", **clip(tmp_path)}],
           **top}
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps(doc), encoding="utf-8")
    checked = invoke("check", script, "--out", tmp_path / "out")
    code, lines, output = render_until_load(script, tmp_path / "out")
    assert checked.exit_code == 2 and (code, lines) == (2, error_lines(checked.output)), (checked.output, output)
    assert len(lines) == 1 and expect in lines[0], lines
