"""The combination matrix: every clip feature from ONE list (FEATURES), each alone and in every pair, on the tiny
kits. tests/run/test_matrix.py runs it; docs/matrix.md holds the refused pairs it finds (`refused_table`).

A feature is one thing a person turns on in a clip, as a fragment of the clip's YAML. Variants of one feature (every
scheduler, every output format, every adapter weight form on every adapter kind) share a `group`: each variant is
rendered alone, and pairs of groups take turns through their variants, so every variant also meets other features.
A new script field fails `test_every_clip_field_is_in_the_matrix` until a feature (or BASE, for a field every clip
sets the same way) covers it.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

SCRIPT_STEM = "matrix"
SEED = 1

# Every clip starts from this: the tiny kit, as small and short as it renders (2 frames of 16x16, 1 step).
BASE = {"preset": "tiny", "description": "matrix base clip", "frames": 2, "width": 16, "height": 16, "fps": 8,
        "steps": 1, "seed": SEED, "negative": "blurry", "outputs": {"webp": {}}}
# Fields every clip sets the same way (they are also how each combination differs: `name`), so no feature needs
# them; anything else in the schema needs a feature.
BASE_FIELDS = {"name", "preset", "description", "model", "motion_adapter", "width", "height", "fps", "steps", "seed",
               "negative", "outputs", "prompt"}
# ClipSpec fields that no script sets (derived, or where the clip came from).
DERIVED = {"multi_seed", "script", "extra"}

SD15, SDXL = "sd15", "sdxl"
POSE_POINTS = {"nose": [0.5, 0.15], "neck": [0.5, 0.3], "r_shoulder": [0.3, 0.3], "l_shoulder": [0.7, 0.3],
               "r_elbow": [0.25, 0.55], "l_elbow": [0.75, 0.55], "r_hip": [0.4, 0.7], "l_hip": [0.6, 0.7]}
POSE_MOVED = {**POSE_POINTS, "r_elbow": [0.2, 0.2], "l_elbow": [0.8, 0.2]}


@dataclass(frozen=True)
class Feature:
    """One variant of a feature: its clip fragment (`clip`, or `on(stack)` where it differs by model stack), the
    script fields it sets, and the words by which a refusal may name it (its fields, and `terms`)."""

    name: str
    group: str
    fields: tuple[str, ...]
    clip: dict = field(default_factory=dict)
    terms: tuple[str, ...] = ()
    on: Callable[[str], dict] | None = None

    def fragment(self, stack: str) -> dict:
        return self.on(stack) if self.on else self.clip

    @property
    def words(self) -> tuple[str, ...]:
        return self.fields + self.terms


def _adapter(kind: str, form: str) -> Feature:
    weight = {"constant": 0.7, "ramp": {"start": 1.0, "end": 0.2},
              "schedule": {0.0: 1.0, 0.5: 0.4, 1.0: 0.0}}[form]

    def on(stack: str) -> dict:
        if kind == "lcm":  # the preset's LCM-LoRA, re-weighted by repeating its name
            entry = {"name": "lcm", "weight": weight}
        elif kind == "motion":
            entry = {"name": "zoom", "source": "tiny-zoom-in", "kind": "motion", "weight": weight}
        else:  # a spatial LoRA of the base's family in the style slot
            entry = {"name": "style", "source": "tiny-xl-lcm" if stack == SDXL else "tiny-lcm", "kind": "style",
                     "weight": weight}
        return {"adapters": [entry], "steps": 3}  # three steps: a ramp and a schedule move between them

    return Feature(f"adapter-{kind}-{form}", "adapters", ("adapters",), on=on)


def _output(name: str, options: dict) -> Feature:
    return Feature(name, "outputs", ("outputs",), {"outputs": options})


def _scheduler(name: str) -> Feature:
    return Feature(f"scheduler-{name}", "scheduler", ("scheduler",), {"scheduler": name, "steps": 2})


FEATURES: list[Feature] = [
    Feature("prompt-travel", "prompt-travel", ("prompt",), {"prompt": {0: "a red fox", 1: "a white cat"}},
            terms=("prompt travel",)),
    Feature("negative-travel", "negative-travel", ("negative",), {"negative": {0: "blurry", 1: "dark"}}),
    Feature("cfg", "cfg", ("guidance",), {"guidance": 2.5}),
    Feature("long", "long", ("frames",), {"frames": 34}, terms=("context",)),  # past the adapter's 32 frames
    Feature("context-motion", "context", ("context",), {"frames": 8, "context": {
        "length": 4, "overlap": 2, "weighting": "flat", "noise": "repeat_context", "blend": "motion"}}),
    Feature("context-unet", "context", ("context",), {"frames": 8, "context": {
        "length": 4, "overlap": 1, "weighting": "delayed_reverse_sawtooth", "noise": "random", "blend": "unet"}}),
    Feature("loop", "loop", ("loop",), {"loop": True, "frames": 4}),
    *[_adapter(kind, form) for kind in ("lcm", "motion", "style") for form in ("constant", "ramp", "schedule")],
    # A source's options written beside `source:` (the form people write), here the file of a LoRA folder.
    Feature("adapter-options-beside", "adapters", ("adapters",), {"adapters": [{
        "name": "zoom", "source": "tiny-zoom-in", "weight_name": "diffusion_pytorch_model.safetensors",
        "kind": "motion", "weight": 0.6}]}),
    Feature("free-init", "free_init", ("free_init",), {"free_init": {"iters": 2, "method": "gaussian"}}),
    Feature("free-init-fast", "free_init", ("free_init",), {
        "free_init": {"iters": 2, "method": "ideal", "fast": True}, "steps": 2}),
    Feature("pose-keyframes", "pose", ("pose",), {"pose": {
        "source": {0: POSE_POINTS, 1: POSE_MOVED}, "controlnet": "tiny", "scale": 0.8}}),
    Feature("pose-json", "pose", ("pose",), {"pose": {
        "source": "inputs/pose.json", "controlnet": "tiny-openpose-file", "scale": {0.0: 1.0, 1.0: 0.5},
        "start": 0.0, "end": 0.9, "fit": "cover", "source_fps": 8, "overrun": "hold", "canvas": [64, 64],
        "threshold": 0.2}}),
    Feature("init-video", "init_video", ("init_video",), {"init_video": {"source": "inputs/source.mkv",
                                                                       "strength": 0.6}}),
    Feature("init-video-frames", "init_video", ("init_video",), {"init_video": {
        "source": "inputs/source-frames", "fps": 8, "start": 0.125, "fit": "pad", "strength": 1.0,
        "enforce_inference_steps": False}}),
    Feature("refine", "refine", ("refine",), {"refine": {"scale": 1.5, "strength": 0.5}}),
    Feature("keyframes", "keyframes", ("keyframes", "sparsectrl"), {
        "keyframes": {0: "inputs/key0.png"}, "sparsectrl": "tiny"}),
    Feature("keyframes-options", "keyframes", ("keyframes", "sparsectrl"), {
        "keyframes": {"images": {0: "inputs/key0.png", 1: "inputs/key1.png"}, "scale": 0.8, "fit": "contain"},
        "sparsectrl": "tiny-sparsectrl-file"}),
    Feature("init-image", "keyframes", ("init_image", "sparsectrl"), {
        "init_image": "inputs/key0.png", "sparsectrl": "tiny"}, terms=("keyframes",)),
    Feature("seeds", "seeds", ("seed",), {"seed": [1, 2]}),
    _output("gif", {"gif": {"quality": 80, "loop": 2, "pingpong": True, "denoise": True}}),
    _output("gif-target", {"gif": {"target": "discord-emoji"}}),
    _output("gif-budget", {"gif": {"max_bytes": 200000, "interpolate": 2, "engine": "animate"}}),
    _output("mp4", {"mp4": {"crf": 23, "preset": "ultrafast", "tune": "animation"}}),
    _output("mp4-target", {"mp4": {"target": "reels", "fps_mode": "duplicate", "preset": "ultrafast"}}),
    _output("webm", {"webm": {"crf": 40}}),
    _output("webp", {"webp": {"quality": 50, "lossless": True, "loop": 1, "pingpong": True}}),
    _output("png", {"png": {"bits": 16, "compress_level": 0}}),
    _output("prores", {"prores": {"profile": "4444"}}),
    _output("ffv1", {"ffv1": {}}),
    _output("sheet", {"sheet": {"columns": 2, "gap": 0, "every": 1, "max_width": 64}}),
    *[_scheduler(name) for name in ("lcm", "animatelcm", "lightning", "lightning-xl", "ddim", "euler", "euler-a",
                                    "dpm++2m", "dpm++2m-karras", "default")],
    Feature("no-fuse", "fuse", ("fuse",), {"fuse": False}),
    Feature("sdxl", "sdxl", ("model", "motion_adapter", "preset"), {
        "preset": "tiny-xl", "model": "tiny-xl", "motion_adapter": "tiny-xl-motion"}, terms=("SDXL",)),
    Feature("sdxl-unet", "sdxl", ("model", "motion_adapter", "preset", "unet"), {
        "preset": "tiny-xl", "model": "tiny-xl", "motion_adapter": "tiny-xl-motion",
        "unet": "tiny-xl-lightning-unet"}, terms=("SDXL",)),
    Feature("head-tail", "head-tail", ("head", "tail"), {"head": "masterpiece", "tail": "film grain"}),
    Feature("slerp", "interpolation", ("interpolation",), {"interpolation": "slerp"}),
    Feature("decode-chunk", "decode_chunk", ("decode_chunk",), {"decode_chunk": 1}),
]
BY_NAME = {f.name: f for f in FEATURES}
assert len(BY_NAME) == len(FEATURES), "feature names must be unique"

# Known defects being fixed elsewhere: a combination holding any of these features is expected to fail, with this
# reason (pytest.xfail strict: the mark must go when the fix lands). Keyed by feature name; empty: none known.
KNOWN: dict[str, str] = {}


@dataclass(frozen=True)
class Combo:
    features: tuple[Feature, ...]

    @property
    def name(self) -> str:
        return "+".join(f.name for f in self.features)

    @property
    def clip_name(self) -> str:
        return "c-" + "-".join(re.sub(r"[^a-z0-9]+", "", f.name) for f in self.features)

    @property
    def stack(self) -> str:
        return SDXL if any(f.group == "sdxl" for f in self.features) else SD15

    @property
    def known(self) -> str | None:
        return next((KNOWN[f.name] for f in self.features if f.name in KNOWN), None)

    def clip(self) -> dict:
        """The clip's fields: BASE, then each feature's fragment."""
        out = {"name": self.clip_name, "prompt": "a red fox in snow"}
        for feature in self.features:
            out = merge(out, feature.fragment(self.stack))
        return out


# Fields two fragments may both set: the larger value wins (a feature needing more frames or steps gets them).
LARGER = ("frames", "steps")


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key in LARGER:
            out[key] = max(out[key], value)
        elif isinstance(value, dict) and isinstance(out[key], dict) and key != "prompt":
            out[key] = merge(out[key], value)
        elif isinstance(value, list) and isinstance(out[key], list):
            out[key] = out[key] + value
        else:
            out[key] = value  # a feature replaces the base clip's value (prompt text by travel)
    return out


# Pairs editing users rely on (docs/editing.md): they must render, every variant with every variant.
MUST_RENDER = [(pose, video) for pose in ("pose-keyframes", "pose-json")
               for video in ("init-video", "init-video-frames", "refine")]


def combinations() -> list[Combo]:
    """Every variant alone, then every pair of groups, each pair taking the next variant of both groups in turn,
    then the MUST_RENDER pairs not met so far."""
    groups: dict[str, list[Feature]] = {}
    for feature in FEATURES:
        groups.setdefault(feature.group, []).append(feature)
    out = [Combo((f,)) for f in FEATURES]
    turn = {g: itertools.cycle(variants) for g, variants in groups.items()}
    for a, b in itertools.combinations(groups, 2):
        out.append(Combo((next(turn[a]), next(turn[b]))))
    names = {c.name for c in out}
    out += [Combo((BY_NAME[a], BY_NAME[b])) for a, b in MUST_RENDER if f"{a}+{b}" not in names]
    return out


def script_doc(clips: list[dict]) -> dict:
    return {"version": 1, "defaults": BASE, "clips": clips}


class _Plain(yaml.SafeDumper):
    def ignore_aliases(self, data):  # scripts refuse YAML anchors: write shared values out
        return True


def write_script(path: Path, clips: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(script_doc(clips), Dumper=_Plain, sort_keys=False), encoding="utf-8")
    return path


def write_inputs(folder: Path) -> Path:
    """The files features point at, under `folder`/inputs: keyframe images, a pose JSON, an init video and the same
    video as a folder of frames."""
    import numpy as np
    from PIL import Image

    from video_helpers import constant_rate, frame_image, write_video

    inputs = folder / "inputs"
    (inputs / "source-frames").mkdir(parents=True, exist_ok=True)
    for k in range(2):
        image = np.zeros((24, 24, 3), np.uint8)
        image[:, :, k] = 200
        Image.fromarray(image).save(inputs / f"key{k}.png")
    write_video(inputs / "source.mkv", constant_rate(40, 8), width=24, height=24)
    for k in range(40):
        Image.fromarray(frame_image(k, 24, 24)).save(inputs / "source-frames" / f"{k:03d}.png")

    def person(points):
        flat = [0.0] * 54
        from motion.pose.keypoints import INDEX

        for name, (x, y) in points.items():
            flat[INDEX[name] * 3: INDEX[name] * 3 + 3] = [x * 64, y * 64, 0.9]
        return {"people": [{"pose_keypoints_2d": flat}]}

    (inputs / "pose.json").write_text(json.dumps([person(POSE_POINTS), person(POSE_MOVED)]), encoding="utf-8")
    return inputs


# ---------------------------------------------------------------- results and the refused-pairs table

@dataclass
class Tally:
    """What the matrix found; conftest prints `line()` in pytest's terminal summary."""

    run: int = 0
    rendered: int = 0
    refused: int = 0
    defects: int = 0
    known: int = 0

    def line(self) -> str:
        known = f" ({self.known} known, marked xfail)" if self.known else ""
        return (f"combinations: {self.run} run, {self.rendered} rendered, {self.refused} refused with a reason, "
                f"{self.defects} defects{known}")

    def add(self, other: dict) -> None:
        for key, value in other.items():
            setattr(self, key, getattr(self, key) + value)


TALLY = Tally()


def reason(line: str) -> str:
    """A refusal line without its place (`error: FILE:LINE:COL: clips[0]...` or `error: FILE: clip NAME:`) or
    machine paths, as the doc shows it."""
    text = re.sub(r"^error: ", "", line)
    text = re.sub(r"^\S*\.yaml(:\d+:\d+)?: (clip [\w.-]+: )?", "", text)
    text = re.sub(r"clips\[0\]\.?", "", text)
    text = re.sub(r"\S*/tiny-v\d+/", "<kit>/", text)
    text = re.sub(r"\S*/inputs/", "inputs/", text)
    return text.strip()


DOC_HEAD = """# The combination matrix

`tests/run/test_matrix.py` renders every clip feature of a script alone and in every pair on the tiny offline kits.
`tests/matrix_helpers.py` holds the one list of features (`FEATURES`); a script field that no feature covers fails
the suite. Variants of a feature (every scheduler, every output format with its options and targets, every adapter
weight form on every adapter kind, both context blends, pose from keyframes and from OpenPose JSON, ...) are each
rendered alone; each pair of features takes the features' variants in turn, so every variant also meets others.

Each combination either
- renders completely: no failed clip, every output decodes (PIL, PyAV), the manifest line, sidecar and gallery
  entry exist, `animate encode SIDECAR` re-encodes it, and `animate replay SIDECAR` reads back the spec that was
  rendered (same render key; replay's denoising is served from the matrix's frames) and writes its outputs; or
- is refused by `animate check` with one line naming both fields, and `animate render` refuses it with the same
  line and exit code 2 before anything loads.

A lone feature must render. This table is generated from the matrix (`ANIMATE_WRITE_MATRIX_DOC=1 pytest
tests/run/test_matrix.py` rewrites it; a test fails when it is out of date): the refused pairs and why.

| combination | reason |
|---|---|
"""


def refused_table(refusals: dict[str, str]) -> str:
    """docs/matrix.md: each refused combination (by name) and its reason, in matrix order."""
    rows = ["| " + name.replace("+", " + ") + " | " + text.replace("|", "\\|") + " |" for name, text in refusals.items()]
    return DOC_HEAD + "\n".join(rows) + "\n"


def counts(outcomes: dict[str, str]) -> dict[str, Any]:
    values = list(outcomes.values())
    return {"run": len(values), "rendered": values.count("rendered"), "refused": values.count("refused"),
            "defects": values.count("defect"), "known": values.count("known")}
