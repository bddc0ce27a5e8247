"""From a script to ClipSpecs: reading and validating a script file in one pass, presets, and resolution
in layers (built-in ⊕ preset ⊕ defaults ⊕ clip ⊕ command line) into one frozen ClipSpec per (clip, seed).
Every problem is reported at once, one line each."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from animate.errors import AnimateError, ConfigError
from animate.spec.clipspec import PLAIN, ClipSpec, plain_value
from animate.spec.lines import error_lines, format_errors, short_error, validation_problems
from animate.spec.paths import local_path
from animate.spec.positions import MAX_SCRIPT_BYTES, located, lookup, parse, raw_problems
from animate.spec.resolved import Adapter, Context, FreeInit, InitVideo, Pose, Refine
from animate.spec.schema import ClipFields, ScriptModel, cross_checks
from animate.spec.subspecs import ContextSpec, FreeInitSpec, InitVideoSpec, PoseSpec, RefineSpec
from animate.spec.values import loc_text, show
from animate.models.family import SDXL, base_family, native_size
from animate.models.sources import resolve_source
from animate.spec.keyframes import resolve_keyframes
from importlib.resources import files
import yaml

# Built-in defaults: the bottom layer of every clip (the plain fields' own come from ClipSpec).
BUILTIN: dict[str, Any] = {
    "motion_adapter": "animatediff-v1-5-2",
    "adapters": [],
    "seed": 42,
    "outputs": ["gif"],
    **{name: f.metadata["builtin"] for name, f in PLAIN.items()},
}


@dataclass
class Script:
    """A validated script and where it came from."""

    path: Path
    model: ScriptModel
    positions: dict
    command_line: bool = False  # built from command-line flags (errors name flags, not file positions)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_script(path: str | Path, *, max_bytes: int | None = MAX_SCRIPT_BYTES) -> Script:
    """Read and validate a script file of at most `max_bytes` (None: any size); every problem is reported in
    one ConfigError."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise ConfigError("no such file", where=where, hint="check the script path")
    if path.is_dir():
        raise ConfigError("is a folder, not a script file", where=where)
    if not path.is_file():  # a FIFO or a device: reading it may never end
        raise ConfigError("is not a regular file", where=where, hint="give a YAML, JSON or TOML file")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ConfigError(f"script is larger than {max_bytes / 1_000_000:g} MB", where=where,
                          hint="split it into several scripts, or raise the limit with --limit script=SIZE")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise ConfigError("script is binary, not text", where=where, hint="give a YAML, JSON or TOML file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"script is not UTF-8 text (byte {exc.start + 1} on line {line})", where=where,
                          hint="save it as UTF-8 YAML, JSON or TOML") from None
    return parse_script(text, where=where, suffix=path.suffix or ".yaml", path=path, max_bytes=max_bytes)


def parse_script(text: str, *, where: str = "<script>", suffix: str = ".yaml", path: Path | None = None,
                 max_bytes: int | None = MAX_SCRIPT_BYTES) -> Script:
    """Validate script text in one pass; raise one ConfigError holding every problem."""
    data, positions, duplicates = parse(text, suffix, where, max_bytes=max_bytes)
    if data is None:
        raise ConfigError("script is empty", where=where, hint="start from an example in presets/examples/")
    if not isinstance(data, dict):
        kind = {list: "a list", str: "plain text"}.get(type(data), type(data).__name__)
        raise ConfigError(f"the top level must be a mapping with `clips:` (got {kind})", where=located(where, (1, 1)),
                          hint="start from an example in presets/examples/")
    problems = [(loc, msg, pos) for loc, pos, msg in duplicates] + raw_problems(data)
    if not problems:
        problems += cross_checks(data)
        try:
            model = ScriptModel.model_validate(data)
        except ValidationError as exc:
            problems = validation_problems(exc, data, ScriptModel) + problems
        except (RecursionError, OverflowError) as exc:
            problems.append(((), f"script is too deeply nested or holds numbers too large ({type(exc).__name__})"))
    if problems:
        problems.sort(key=lambda p: p[2] if len(p) > 2 else lookup(positions, p[0]) or (0, 0))
        lines = error_lines(problems, where, positions)
        raise ConfigError(lines[0], lines=lines)
    return Script(path=path or Path(where), model=model, positions=positions)


def parse_text(text: str, suffix: str, where: str) -> tuple[Any, dict]:
    """Parse script text by suffix; return (data, positions). Raise ConfigError with a location."""
    data, positions, duplicates = parse(text, suffix, where)
    if duplicates:
        lines = error_lines([(path, msg, pos) for path, pos, msg in duplicates], where, positions)
        raise ConfigError(lines[0], lines=lines)
    return data, positions


# ---------------------------------------------------------------- presets and resolution

def presets_dir() -> Path:
    """The built-in presets: presets/ beside the package in a checkout, animate/presets in a wheel."""
    here = Path(__file__).resolve().parent.parent  # the animate package
    for candidate in (here.parent / "presets", here / "presets"):
        if candidate.is_dir():
            return candidate

    return Path(str(files("animate") / "presets"))


def list_presets() -> dict[str, str]:
    """Built-in preset name → its one-line description."""

    out = {}
    for p in sorted(presets_dir().glob("*.yaml")):
        data = yaml.safe_load(p.read_text()) or {}
        out[p.stem] = str(data.get("description", ""))
    return out


def load_preset(name: str, base_dir: Path, where: str) -> dict:
    """A preset by built-in name or by path (a YAML file of clip fields); `where` prefixes error lines."""
    candidate = presets_dir() / f"{name}.yaml"
    path = candidate if re.fullmatch(r"[a-z0-9._-]+", name) and candidate.exists() else (base_dir / name)
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        close = difflib.get_close_matches(name, list(list_presets()), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"built-in presets: {', '.join(list_presets())}"
        raise ConfigError(f"unknown preset {show(name)}", where=where, hint=hint)
    if path.stat().st_size > MAX_SCRIPT_BYTES:  # a preset is a few lines; a huge one is not a preset
        raise ConfigError(f"preset {str(path)!r} is larger than {MAX_SCRIPT_BYTES / 1_000_000:g} MB", where=where)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read preset {str(path)!r} ({exc})", where=where) from None
    data, positions = parse_text(text, ".yaml", str(path))
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError("a preset must be a mapping of clip fields", where=located(str(path), (1, 1)))
    try:
        ClipFields.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, str(path), positions, data, root=ClipFields)
        raise ConfigError(lines[0], lines=lines) from None
    data = dict(data)
    data.pop("description", None)
    if "preset" in data:
        raise ConfigError("presets cannot name another preset", where=located(str(path), positions.get(("preset",))))
    return data


FIELD_BY_FIELD = ("context", "free_init", "init_video", "refine")  # mappings a later layer updates key by key


def _merge(layers: list[tuple[str, dict]]) -> tuple[dict, dict]:
    """Later layers win; adapters merge by name so a clip can add a LoRA or re-weight one, and a list of
    output formats keeps the options a lower layer gave them (`--format mp4` over a preset's `mp4: {target:
    reels}`). Returns the fields and, for each field, the layer that set it last."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for layer, values in layers:
        for key, value in values.items():
            if value is None:
                continue
            if key == "adapters" and "adapters" in out:
                merged = {a["name"]: dict(a) for a in out["adapters"]}
                for a in value:
                    merged[a["name"]] = {**merged.get(a["name"], {}), **{k: v for k, v in a.items() if v is not None}}
                out[key] = list(merged.values())
            elif key in FIELD_BY_FIELD and isinstance(out.get(key), dict):  # field by field
                out[key] = {**out[key], **value}
            elif key == "outputs" and isinstance(value, list) and isinstance(out.get("outputs"), dict):
                out[key] = {fmt: out["outputs"].get(fmt) for fmt in value}
            else:
                out[key] = value
            origin[key] = layer
    return out, origin


def _dump(model: BaseModel | None) -> dict:
    return model.model_dump(exclude_none=True, exclude_unset=True) if model is not None else {}


class _Sites:
    """Turns (clip index, layer, path) into `file:line:col: clips[2].prompt` for resolution errors."""

    def __init__(self, script: Script, clip_index: int, clip_adapters: list, default_adapters: list):
        self.script, self.index = script, clip_index
        self.where = "command line" if script.command_line else str(script.path)
        self.clip_adapters = [a["name"] for a in clip_adapters]
        self.default_adapters = [a["name"] for a in default_adapters]

    def __call__(self, path: tuple, layer: str = "clip", key: bool = False) -> str:
        if layer == "command line" or self.script.command_line:
            return f"command line: {loc_text(path)}"
        if path[:1] == ("adapters",) and isinstance(path[1], str):  # an adapter by name → its entry
            name = path[1]
            if layer == "defaults" or name not in self.clip_adapters and name in self.default_adapters:
                layer, path = "defaults", ("adapters", self.default_adapters.index(name)) + path[2:]
            elif name in self.clip_adapters:
                layer, path = "clip", ("adapters", self.clip_adapters.index(name)) + path[2:]
        full = (("defaults",) if layer == "defaults" else ("clips", self.index)) + path
        return f"{located(self.where, lookup(self.script.positions, full, key=key))}: {loc_text(full)}"


def resolve(script: Script, overrides: dict | None = None, *, only: list[str] | None = None) -> list[ClipSpec]:
    """Every (clip, seed) of a script as a ClipSpec: built-in ⊕ preset ⊕ defaults ⊕ clip ⊕ overrides.
    Every problem in every clip is reported in one ConfigError."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides:
        try:
            ClipFields.model_validate(overrides)
        except ValidationError as exc:
            lines = error_lines(validation_problems(exc, overrides, ClipFields), "command line", {})
            raise ConfigError(lines[0], lines=lines) from None
    names = [c.name for c in script.model.clips]
    for wanted in only or []:
        if wanted not in names:
            close = difflib.get_close_matches(wanted, names, n=1)
            raise ConfigError(f"no clip named {wanted!r}", where="--only",
                              hint=f"did you mean `{close[0]}`?" if close else f"clips: {', '.join(names)}")
    defaults = _dump(script.model.defaults)
    specs: list[ClipSpec] = []
    problems: list[str] = []
    stems: dict[str, tuple[int, str, int]] = {}
    for index, clip in enumerate(script.model.clips):
        if only and clip.name not in only:
            continue
        own = _dump(clip)
        sites = _Sites(script, index, own.get("adapters", []), defaults.get("adapters", []))
        preset_name, preset_layer = next(((layer[k], name) for name, layer, k in (
            ("command line", overrides, "preset"), ("clip", own, "preset"), ("defaults", defaults, "preset"))
            if layer.get(k)), (None, None))
        preset: dict = {}
        names = [preset_name] if isinstance(preset_name, str) else list(preset_name or [])
        try:
            for i, name in enumerate(names):  # e.g. [lcm, reels]: a render preset, then an output preset
                path = ("preset",) if isinstance(preset_name, str) else ("preset", i)
                preset = _merge([("preset", preset),
                                 ("preset", load_preset(name, script.base_dir, sites(path, preset_layer)))])[0]
        except ConfigError as exc:
            problems.extend(exc.line().splitlines())
            continue
        preset_name = "+".join(names) or None
        fields, origin = _merge([
            ("built-in", BUILTIN), ("preset", preset),
            ("defaults", {k: v for k, v in defaults.items() if k != "preset"}),
            ("clip", {k: v for k, v in own.items() if k not in ("preset", "name")}),
            ("command line", {k: v for k, v in overrides.items() if k != "preset"})])
        clip_specs, clip_problems = _resolve_clip(clip.name, fields, origin, sites, script, preset_name)
        problems.extend(clip_problems)
        for spec in clip_specs:
            if spec.stem in stems and stems[spec.stem][0] != index:
                other, other_name, other_seed = stems[spec.stem]
                problems.append(f"{sites(('name',))}: {clip.name!r} writes the same files ({spec.stem}.*) as "
                                f"clips[{other}] {other_name!r} at seed {other_seed}; rename one of them")
            stems.setdefault(spec.stem, (index, spec.name, spec.seed))
        specs.extend(clip_specs)
    if problems:
        lines = list(dict.fromkeys(problems))
        raise ConfigError(lines[0], lines=lines)
    return specs


def _required_and_keys(f: dict, sites: _Sites, frames: int) -> list[str]:
    """A clip's missing required fields and its travel keyframes past the last frame."""
    problems = []
    if not f.get("model"):
        problems.append(f"{sites(('model',))}: required field is missing; set it in the clip or under defaults "
                        "(a hub id like owner/name, a folder, a .safetensors file, or `tiny` for the offline kit)")
    if not f.get("prompt"):
        problems.append(f"{sites(('prompt',))}: required field is missing; every clip needs a prompt (text, "
                        'or keyframes like {0: "...", 12: "..."})')
    for key in ("prompt", "negative"):
        value = f.get(key)
        if isinstance(value, dict):
            for k in sorted(k for k in value if k >= frames):
                problems.append(f"{sites((key, k), key=True)}: keyframe {k} is past the last frame ({frames - 1}); "
                                f"use keys below {frames} or raise `frames`")
    return problems


def _adapter(a: dict, src, sites: _Sites, origin: dict, problems: list[str]) -> Adapter | None:
    """One adapter of the merged fields, its source resolved and its weight in ClipSpec's form."""
    if a.get("source") is None:
        problems.append(f"{sites(('adapters', a['name'], 'source'))}: required field is missing (adapter "
                        f"{a['name']!r} has no source here, in defaults or in the preset)")
        return None
    s = src(a["source"], ("adapters", a["name"], "source"), layer=origin.get("adapters"))
    if s is None:
        return None
    kind = a.get("kind") or ("lcm" if s.role == "lcm" or a["name"] == "lcm" else
                             "motion" if s.role == "motion-lora" else "style")
    weight = a.get("weight", 1.0)
    if isinstance(weight, dict) and set(weight) == {"start", "end"}:
        weight = (float(weight["start"]), float(weight["end"]))
    elif isinstance(weight, dict):  # {progress: weight}, sorted by the schema
        weight = {float(k): float(v) for k, v in weight.items()}
    else:
        weight = float(weight)
    return Adapter(name=a["name"], source=s, kind=kind, weight=weight)


def _pose(f: dict, src, sites: _Sites, origin: dict, base_dir, frames: int, problems: list[str]):
    """The clip's pose with every default filled, its ControlNet resolved and its source found."""
    # Fill the pose defaults (scale, start, end, fit) so the renderer and sidecar see every value.
    p = {k: v for k, v in PoseSpec.model_construct().model_dump().items() if k != "source"}
    p.update({k: v for k, v in dict(f["pose"]).items() if v is not None})
    layer = origin.get("pose")
    p["controlnet"] = src(p.get("controlnet", "openpose"), ("pose", "controlnet"), slot="controlnet",
                          layer=layer)
    if isinstance(p["source"], str):
        given = p["source"]
        p["source"], exists = local_path(base_dir, given)
        if not exists:
            problems.append(f"{sites(('pose', 'source'), layer)}: no such file or folder: {given!r} "
                            "(relative paths resolve against the script's folder)")
    else:
        for k in sorted(k for k in p["source"] if k >= frames):
            problems.append(f"{sites(('pose', 'source', k), key=True)}: pose keyframe {k} is past the last frame "
                            f"({frames - 1}); use keys below {frames} or raise `frames`")
    return Pose(**p)


def _resolve_clip(name: str, f: dict, origin: dict, sites: _Sites, script: Script,
                  preset_name: str | None) -> tuple[list[ClipSpec], list[str]]:
    """One clip's ClipSpecs (one per seed) and its problems."""
    base_dir = script.base_dir
    frames = int(f["frames"])
    problems: list[str] = _required_and_keys(f, sites, frames)

    def src(value, path: tuple, slot=None, layer="clip"):
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        try:
            return resolve_source(value, base_dir=base_dir, field=loc_text(path), slot=slot)
        except AnimateError as exc:
            problems.append(f"{sites(path, layer)}: {exc.message}" + (f"; {exc.hint}" if exc.hint else ""))
        except (OSError, ValueError) as exc:  # a path the system cannot even look at (too long, bad bytes)
            reason = getattr(exc, "strerror", None) or str(exc)
            problems.append(f"{sites(path, layer)}: cannot use this path ({reason})")
        return None

    model = src(f["model"], ("model",), layer=origin.get("model")) if f.get("model") else None
    motion = src(f["motion_adapter"], ("motion_adapter",), slot="motion", layer=origin.get("motion_adapter"))
    unet = src(f["unet"], ("unet",), layer=origin.get("unet")) if f.get("unet") else None
    adapters = [a for a in (_adapter(a, src, sites, origin, problems) for a in f.get("adapters") or []) if a]
    pose = _pose(f, src, sites, origin, base_dir, frames, problems) if f.get("pose") else None

    keyframes = resolve_keyframes(f, frames=frames, base_dir=base_dir, src=src, sites=sites, origin=origin,
                                  problems=problems)
    init_video = None
    if f.get("init_video"):
        options = InitVideoSpec.model_validate(f["init_video"]).model_dump()  # every option filled
        given = options["source"]
        options["source"], exists = local_path(base_dir, given)
        if not exists:
            problems.append(f"{sites(('init_video', 'source'), origin.get('init_video'))}: no such file or folder: "
                            f"{given!r} (relative paths resolve against the script's folder)")
        init_video = InitVideo(**options)
    refine = Refine(**RefineSpec.model_validate(f["refine"]).model_dump()) if f.get("refine") is not None else None
    context = None
    try:  # each layer's settings were valid alone; merged field by field, they must still fit together
        context = Context(**ContextSpec.model_validate(f.get("context") or {}).model_dump())  # None: auto
    except ValidationError as exc:
        problems.append(f"{sites(('context',), origin.get('context'))}: {exc.errors()[0]['msg']} (with the "
                        "context settings of every layer merged: preset, defaults and clip)")
    if problems:
        return [], problems
    outputs = f["outputs"]
    outputs = {k: dict(v or {}) for k, v in outputs.items()} if isinstance(outputs, dict) else \
        {k: {} for k in outputs}
    seeds = f["seed"] if isinstance(f["seed"], list) else [f["seed"]]
    plain = {key: plain_value(key, f[key]) for key in PLAIN}  # BUILTIN gives each one a value
    if origin.get("width") == origin.get("height") == "built-in":  # no layer gave a size: the base's native one

        if base_family(model) == SDXL:
            plain["width"] = plain["height"] = native_size(model) or 1024
    free_init = FreeInit(**FreeInitSpec.model_validate(f["free_init"]).model_dump()) \
        if f.get("free_init") is not None else None
    return [ClipSpec(
        name=name, seed=int(seed), multi_seed=len(seeds) > 1, model=model, motion_adapter=motion,
        adapters=tuple(adapters), prompt=f["prompt"], negative=f.get("negative") or "", outputs=outputs,
        pose=pose, context=context, free_init=free_init, keyframes=keyframes, init_video=init_video, refine=refine,
        unet=unet, script="" if script.command_line else str(script.path), preset=preset_name, **plain,
    ) for seed in seeds], []


def spec_from_fields(fields: dict, *, name: str = "clip", base_dir: str | Path = ".") -> list[ClipSpec]:
    """Resolve one clip from keyword fields (the `--prompt` command line and the Python API)."""
    data = {"version": 1, "clips": [{"name": name, **{k: v for k, v in fields.items() if v is not None}}]}
    try:
        model = ScriptModel.model_validate(data)
    except ValidationError as exc:
        problems = [(loc[2:] if loc[:2] == ("clips", 0) else loc, msg) for loc, msg in
                    validation_problems(exc, data, ScriptModel)]
        lines = error_lines(problems, "command line", {}) or [f"command line: {short_error(exc)}"]
        raise ConfigError(lines[0], lines=lines) from None
    script = Script(path=Path(base_dir) / f"{name}.yaml", model=model, positions={}, command_line=True)
    return resolve(script)
