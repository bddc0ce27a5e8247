"""Prompt scripts: schema (pydantic, frozen, unknown keys forbidden), loading (YAML/JSON/TOML), presets
merge, and resolution into one frozen ClipSpec per (clip, seed). Every problem is reported at once,
one line each, as `file:line:col: field.path: message`."""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from .errors import AnimateError, ConfigError

NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_SCRIPT_BYTES = 2_000_000
OUTPUT_FORMATS = ("gif", "mp4", "webm", "webp", "png", "prores", "ffv1", "sheet")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(Frozen):
    """A model source with options."""

    source: str = Field(min_length=1)
    revision: str | None = None
    weight_name: str | None = None
    config: str | None = None
    allow_pickle: StrictBool = False


SourceValue = Union[Annotated[str, Field(min_length=1)], SourceSpec]
Weight = Annotated[float, Field(ge=-2, le=3, allow_inf_nan=False)]


class AdapterSpec(Frozen):
    """One LoRA mixed at `weight`; `kind` says which slot it fills (lcm, motion or style)."""

    name: Annotated[str, Field(pattern=NAME_RE)]
    source: SourceValue | None = None
    weight: Weight = 1.0
    kind: Literal["lcm", "motion", "style"] | None = None


class PoseSpec(Frozen):
    """ControlNet OpenPose guidance."""

    source: str | dict[int, dict[str, Any]]
    controlnet: SourceValue = "openpose"
    scale: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] = 1.0
    start: Annotated[float, Field(ge=0, le=1)] = 0.0
    end: Annotated[float, Field(ge=0, le=1)] = 1.0
    fit: Literal["contain", "cover", "stretch"] = "contain"
    kind: Literal["skeleton", "openpose-json", "keyframes", "person-video"] | None = None

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
Prompt = Union[Annotated[str, Field(min_length=1, max_length=10_000)], dict[int, Annotated[str, Field(max_length=10_000)]]]


class ClipFields(Frozen):
    """Every field a clip (or `defaults`, or a preset) may set."""

    preset: str | None = None
    description: str | None = None  # presets only: one line shown by `animate presets`
    model: SourceValue | None = None
    motion_adapter: SourceValue | None = None
    adapters: list[AdapterSpec] | None = None
    scheduler: str | None = None
    steps: Annotated[int, Field(ge=1, le=200)] | None = None
    guidance: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)] | None = None
    frames: Annotated[int, Field(ge=1, le=1024)] | None = None
    fps: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] | None = None
    width: Annotated[int, Field(ge=8, le=4096)] | None = None
    height: Annotated[int, Field(ge=8, le=4096)] | None = None
    seed: Seed | Annotated[list[Seed], Field(min_length=1, max_length=1000)] | None = None
    prompt: Prompt | None = None
    head: str | None = None
    tail: str | None = None
    interpolation: Literal["linear", "slerp"] | None = None
    negative: Prompt | None = None
    outputs: list[str] | dict[str, dict[str, Any] | None] | None = None
    pose: PoseSpec | None = None
    fuse: StrictBool | None = None
    decode_chunk: Annotated[int, Field(ge=1, le=1024)] | None = None

    @field_validator("width", "height")
    @classmethod
    def _by_eight(cls, v):
        if v is not None and v % 8:
            raise ValueError(f"must be divisible by 8 (got {v}); try {max(8, round(v / 8) * 8)}")
        return v

    @field_validator("outputs")
    @classmethod
    def _formats(cls, v):
        names = list(v) if v is not None else []
        for name in names:
            if name not in OUTPUT_FORMATS:
                close = difflib.get_close_matches(str(name), OUTPUT_FORMATS, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else f"; choose from {', '.join(OUTPUT_FORMATS)}"
                raise ValueError(f"unknown output format {name!r}{hint}")
        return v

    @field_validator("adapters")
    @classmethod
    def _unique_adapters(cls, v):
        if v is not None:
            seen = [a.name for a in v]
            dup = {n for n in seen if seen.count(n) > 1}
            if dup:
                raise ValueError(f"adapter name {sorted(dup)[0]!r} is used twice")
        return v

    @field_validator("prompt", "negative")
    @classmethod
    def _keyframes(cls, v):
        if isinstance(v, dict):
            if not v:
                raise ValueError("keyframe mapping is empty; give at least {0: \"...\"}")
            bad = [k for k in v if k < 0]
            if bad:
                raise ValueError(f"keyframe {bad[0]} is negative; frames count from 0")
        return v


class ClipModel(ClipFields):
    name: Annotated[str, Field(pattern=NAME_RE)]


class ReelSpec(Frozen):
    audio: str | None = None
    crossfade: Annotated[float, Field(ge=0, le=10)] = 0.0
    fps: Annotated[float, Field(gt=0, le=120)] | None = None


class ScriptModel(Frozen):
    version: Literal[1] = 1
    defaults: ClipFields | None = None
    clips: Annotated[list[ClipModel], Field(min_length=1, max_length=10_000)]
    reel: ReelSpec | None = None

    @field_validator("clips")
    @classmethod
    def _unique_names(cls, v):
        names = [c.name for c in v]
        dup = [n for i, n in enumerate(names) if n in names[:i]]
        if dup:
            raise ValueError(f"clip name {dup[0]!r} is used twice; clip names become file names and must be unique")
        return v


# Built-in defaults: the bottom layer of every clip.
BUILTIN: dict[str, Any] = {
    "motion_adapter": "animatediff-v1-5-2",
    "adapters": [],
    "scheduler": "ddim",
    "steps": 25,
    "guidance": 7.5,
    "frames": 16,
    "fps": 8,
    "width": 512,
    "height": 512,
    "seed": 42,
    "head": "",
    "tail": "",
    "interpolation": "linear",
    "outputs": ["gif"],
    "fuse": True,
    "decode_chunk": 16,
}


@dataclass(frozen=True)
class ClipSpec:
    """One fully resolved render: a clip at one seed. Sources are resolved but nothing is loaded."""

    name: str
    seed: int
    multi_seed: bool
    model: Any  # models.Source
    motion_adapter: Any
    adapters: tuple  # of (name, Source, weight, kind)
    scheduler: str
    steps: int
    guidance: float
    frames: int
    fps: float
    width: int
    height: int
    prompt: str | dict
    negative: str | dict
    head: str
    tail: str
    interpolation: str
    outputs: dict
    fuse: bool
    decode_chunk: int
    pose: dict | None = None
    script: str = ""
    preset: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"{self.name}-s{self.seed}" if self.multi_seed else self.name

    def to_dict(self) -> dict:
        """Plain JSON-able form (for sidecars, metadata, hashing)."""
        from dataclasses import asdict as _asdict

        d = _asdict(self)
        d["model"] = _source_dict(self.model)
        d["motion_adapter"] = _source_dict(self.motion_adapter)
        d["adapters"] = [{"name": n, "source": _source_dict(s), "weight": w, "kind": k}
                         for n, s, w, k in self.adapters]
        if self.pose:
            d["pose"] = {**self.pose, "controlnet": _source_dict(self.pose["controlnet"])}
        return d


def _source_dict(src) -> dict:
    if src is None:
        return None
    return {k: v for k, v in asdict(src).items() if v not in (None, False) and k != "role"}


# ---------------------------------------------------------------- loading and error locations

def _yaml_positions(text: str) -> dict[tuple, tuple[int, int]]:
    """Map each path in a YAML document to the (line, col) of its value, for error messages."""
    import yaml

    positions: dict[tuple, tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return positions

    def walk(node, path):
        positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                if isinstance(k, str) and re.fullmatch(r"-?\d+", k) and key.tag.endswith(":int"):
                    k = int(k)
                positions[path + (k, "__key__")] = (key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, path + (k,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return positions


class _NoAliasLoader:
    """Marker: YAML anchors/aliases are refused (they make 'billion laughs' bombs cheap)."""


def parse_text(text: str, suffix: str, where: str) -> tuple[Any, dict]:
    """Parse script text by suffix; return (data, positions). Raise ConfigError with a location."""
    if len(text.encode("utf-8", "replace")) > MAX_SCRIPT_BYTES:
        raise ConfigError(f"script is larger than {MAX_SCRIPT_BYTES // 1000} kB", where=where,
                          hint="split it into several scripts")
    if "\x00" in text:
        raise ConfigError("script is binary, not text", where=where, hint="give a YAML, JSON or TOML file")
    suffix = suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text), {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", where=f"{where}:{exc.lineno}:{exc.colno}") from None
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            return tomllib.loads(text), {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", where=where) from None
    import yaml

    try:
        events = list(yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", where=loc) from None
    for ev in events:
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            mark = ev.start_mark
            raise ConfigError("YAML anchors and aliases are not allowed in scripts",
                              where=f"{where}:{mark.line + 1}:{mark.column + 1}",
                              hint="write the value out, or put shared settings under `defaults:`")
    data = yaml.safe_load(text)
    return data, _yaml_positions(text)


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple) -> tuple:
    # pydantic inserts union branch names (`str`, `SourceSpec`, `dict[int,str]`...) into locations.
    return tuple(p for p in loc if isinstance(p, int) or not re.search(r"[\[\]]|^(str|int|float|bool|list|dict|"
                                                                        r"SourceSpec|PoseSpec|constrained-str|"
                                                                        r"function-after)", str(p)))


def _message(err: dict) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind.startswith("string_pattern"):
        return f"must be lower-case letters, digits, '.', '_' or '-' (max 64, not starting with '.' or '-') " \
               f"(got {value!r})"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        ctx = err.get("ctx", {})
        lo, hi = ctx.get("ge", ctx.get("gt")), ctx.get("le", ctx.get("lt"))
        return f"must be {'≥' if 'ge' in ctx else '>'} {lo} (got {value!r})" if lo is not None else \
            f"must be {'≤' if 'le' in ctx else '<'} {hi} (got {value!r})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower()}{msg[1:]} (got {shown})" if "(got" not in msg else msg


def _field_names(model) -> list[str]:
    return list(model.model_fields)


def format_errors(exc: ValidationError, where: str, positions: dict, data: Any, prefix: tuple = ()) -> list[str]:
    """One line per problem, deduplicated across union branches."""
    lines, seen = [], set()
    by_loc: dict[tuple, list[dict]] = {}
    for err in exc.errors():
        loc = prefix + _clean_loc(err["loc"])
        by_loc.setdefault(loc, []).append(err)
    for loc, errs in by_loc.items():
        # For unions, prefer the most specific message (not the "should be a valid string" branch).
        errs.sort(key=lambda e: e["type"] in ("string_type", "model_type", "dict_type", "int_type",
                                              "list_type", "model_attributes_type"))
        err = errs[0]
        msg = _message(err)
        if err["type"] == "extra_forbidden":
            key = loc[-1]
            parent = ScriptModel if len(loc) == 1 else _model_for(loc[:-1])
            close = difflib.get_close_matches(str(key), _field_names(parent), n=1, cutoff=0.6) if parent else []
            if close:
                msg += f"; did you mean `{close[0]}`?"
            pos = positions.get(loc + ("__key__",)) or positions.get(loc)
        else:
            pos = positions.get(loc) or _nearest(positions, loc)
        text = f"{where}:{pos[0]}:{pos[1]}" if pos else where
        line = f"{text}: {_loc_text(loc)}: {msg}" if loc else f"{text}: {msg}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _nearest(positions: dict, loc: tuple):
    for n in range(len(loc) - 1, -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return None


def _model_for(loc: tuple):
    """The pydantic model class that holds fields at `loc` (for did-you-mean)."""
    model = ScriptModel
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


@dataclass
class Script:
    """A validated script and where it came from."""

    path: Path
    model: ScriptModel
    positions: dict

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_script(path: str | Path) -> Script:
    """Read and validate a script file; every problem is reported in one ConfigError."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise ConfigError("no such file", where=where, hint="check the script path")
    if path.is_dir():
        raise ConfigError("is a folder, not a script file", where=where)
    raw = path.read_bytes()
    if not raw.strip():
        raise ConfigError("script is empty", where=where, hint="start from an example in presets/examples/")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("script is not UTF-8 text", where=where, hint="save it as UTF-8 YAML, JSON or TOML") \
            from None
    return parse_script(text, where=where, suffix=path.suffix or ".yaml", path=path)


def parse_script(text: str, *, where: str = "<script>", suffix: str = ".yaml", path: Path | None = None) -> Script:
    data, positions = parse_text(text, suffix, where)
    if data is None:
        raise ConfigError("script is empty", where=where)
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping with `clips:` (got {type(data).__name__})", where=where)
    try:
        model = ScriptModel.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, where, positions, data)
        raise ConfigError(lines[0], lines=lines) from None
    except (RecursionError, OverflowError) as exc:
        raise ConfigError(f"script is too deeply nested or holds numbers too large ({type(exc).__name__})",
                          where=where) from None
    return Script(path=path or Path(where), model=model, positions=positions)


# ---------------------------------------------------------------- presets and resolution

def presets_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "presets", here / "presets"):
        if candidate.is_dir():
            return candidate
    from importlib.resources import files

    return Path(str(files("animate") / "presets"))


def list_presets() -> dict[str, str]:
    """Built-in preset name → its one-line description."""
    import yaml

    out = {}
    for p in sorted(presets_dir().glob("*.yaml")):
        data = yaml.safe_load(p.read_text()) or {}
        out[p.stem] = str(data.get("description", ""))
    return out


def load_preset(name: str, base_dir: Path, where: str) -> dict:
    """A preset by built-in name or by path (a YAML file of clip fields)."""
    import yaml

    candidate = presets_dir() / f"{name}.yaml"
    path = candidate if re.fullmatch(r"[a-z0-9._-]+", name) and candidate.exists() else (base_dir / name)
    if not path.is_file():
        close = difflib.get_close_matches(name, list(list_presets()), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"built-in presets: {', '.join(list_presets())}"
        raise ConfigError(f"unknown preset {name!r}", where=where, hint=hint)
    text = path.read_text()
    data, positions = parse_text(text, ".yaml", str(path))
    try:
        ClipFields.model_validate(data or {})
    except ValidationError as exc:
        lines = format_errors(exc, str(path), positions, data)
        raise ConfigError(lines[0], lines=lines) from None
    data = dict(data or {})
    data.pop("description", None)
    if "preset" in data:
        raise ConfigError("presets cannot name another preset", where=str(path))
    return data


def _merge(layers: list[dict]) -> dict:
    """Later layers win; adapters merge by name so a clip can add a LoRA or re-weight one."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if key == "adapters" and "adapters" in out:
                merged = {a["name"]: dict(a) for a in out["adapters"]}
                for a in value:
                    merged[a["name"]] = {**merged.get(a["name"], {}), **{k: v for k, v in a.items() if v is not None}}
                out[key] = list(merged.values())
            else:
                out[key] = value
    return out


def _dump(model: BaseModel | None) -> dict:
    return model.model_dump(exclude_none=True, exclude_unset=True) if model is not None else {}


def resolve(script: Script, overrides: dict | None = None, *, only: list[str] | None = None) -> list[ClipSpec]:
    """Every (clip, seed) of a script as a ClipSpec: built-in ⊕ preset ⊕ defaults ⊕ clip ⊕ overrides."""
    from .models import resolve_source

    where = str(script.path)
    defaults = _dump(script.model.defaults)
    specs, errors = [], []
    names = [c.name for c in script.model.clips]
    for wanted in only or []:
        if wanted not in names:
            close = difflib.get_close_matches(wanted, names, n=1)
            raise ConfigError(f"no clip named {wanted!r}", where="--only",
                              hint=f"did you mean `{close[0]}`?" if close else f"clips: {', '.join(names)}")
    for index, clip in enumerate(script.model.clips):
        if only and clip.name not in only:
            continue
        pos = script.positions.get(("clips", index))
        cwhere = f"{where}:{pos[0]}:{pos[1]}" if pos else where
        label = f"clips[{index}] ({clip.name})"
        own = _dump(clip)
        preset_name = (overrides or {}).get("preset") or own.get("preset") or defaults.get("preset")
        try:
            preset = load_preset(preset_name, script.base_dir, f"{cwhere}: {label}.preset") if preset_name else {}
            fields = _merge([BUILTIN, preset, {k: v for k, v in defaults.items() if k != "preset"},
                             {k: v for k, v in own.items() if k not in ("preset", "name")},
                             {k: v for k, v in (overrides or {}).items() if k != "preset"}])
            specs.extend(_resolve_clip(clip.name, fields, script.base_dir, f"{cwhere}: {label}", where,
                                       preset_name, resolve_source))
        except AnimateError as exc:
            errors.append(exc.line() if not isinstance(exc, ConfigError) or not exc.lines else exc.line())
    if errors:
        raise ConfigError(errors[0], lines=errors)
    return specs


def _resolve_clip(name, f, base_dir, cwhere, script_path, preset_name, resolve_source) -> list[ClipSpec]:
    try:
        ClipFields.model_validate({k: v for k, v in f.items()})
    except ValidationError as exc:
        lines = [f"{cwhere}: {_loc_text(_clean_loc(e['loc']))}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(lines[0], lines=lines) from None
    if not f.get("model"):
        raise ConfigError("model: required field is missing", where=cwhere,
                          hint="set `model: tiny` for the offline demo, or a hub id / folder / .safetensors file")
    if not f.get("prompt"):
        raise ConfigError("prompt: required field is missing", where=cwhere)
    frames = int(f["frames"])
    for key in ("prompt", "negative"):
        value = f.get(key)
        if isinstance(value, dict):
            late = [k for k in value if k >= frames]
            if late:
                raise ConfigError(f"{key}: keyframe {late[0]} is past the last frame ({frames - 1})", where=cwhere,
                                  hint=f"use keys below {frames} or raise `frames`")

    def src(value, field, slot=None):
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        try:
            return resolve_source(value, base_dir=base_dir, field=field, slot=slot)
        except AnimateError as exc:
            raise type(exc)(exc.message, where=f"{cwhere}: {field}", hint=exc.hint) from None

    model = src(f["model"], "model")
    motion = src(f["motion_adapter"], "motion_adapter", slot="motion")
    adapters = []
    for i, a in enumerate(f.get("adapters") or []):
        if a.get("source") is None:
            raise ConfigError(f"adapters[{i}].source: required field is missing (adapter {a['name']!r})",
                              where=cwhere)
        s = src(a["source"], f"adapters[{i}].source")
        kind = a.get("kind") or ("lcm" if s.role == "lcm" or a["name"] == "lcm" else
                                 "motion" if s.role == "motion-lora" else "style")
        adapters.append((a["name"], s, float(a.get("weight", 1.0)), kind))
    pose = None
    if f.get("pose"):
        p = dict(f["pose"])
        p["controlnet"] = src(p.get("controlnet", "openpose"), "pose.controlnet", slot="controlnet")
        if isinstance(p["source"], str):
            path = (base_dir / Path(p["source"]).expanduser())
            p["source"] = str(path.resolve())
        pose = p
    outputs = f["outputs"]
    outputs = {k: dict(v or {}) for k, v in outputs.items()} if isinstance(outputs, dict) else \
        {k: {} for k in outputs}
    if not outputs:
        raise ConfigError("outputs: list at least one format", where=cwhere, hint=f"e.g. [gif, mp4]")
    seeds = f["seed"] if isinstance(f["seed"], list) else [f["seed"]]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed: the list repeats a seed ({seeds})", where=cwhere)
    return [ClipSpec(
        name=name, seed=int(seed), multi_seed=len(seeds) > 1, model=model, motion_adapter=motion,
        adapters=tuple(adapters), scheduler=f["scheduler"], steps=int(f["steps"]), guidance=float(f["guidance"]),
        frames=frames, fps=float(f["fps"]), width=int(f["width"]), height=int(f["height"]),
        prompt=f["prompt"], negative=f.get("negative") or "", head=f.get("head") or "", tail=f.get("tail") or "",
        interpolation=f["interpolation"], outputs=outputs, fuse=bool(f["fuse"]), decode_chunk=int(f["decode_chunk"]),
        pose=pose, script=str(script_path), preset=preset_name,
    ) for seed in seeds]


def json_schema() -> dict:
    """The JSON Schema of a script (for editors)."""
    return ScriptModel.model_json_schema()


def spec_from_fields(fields: dict, *, name: str = "clip", base_dir: str | Path = ".") -> list[ClipSpec]:
    """Resolve one clip from keyword fields (the `--prompt` command line and the Python API)."""
    data = {"version": 1, "clips": [{"name": name, **{k: v for k, v in fields.items() if v is not None}}]}
    script = Script(path=Path(base_dir) / f"{name}.yaml", model=None, positions={})
    try:
        script.model = ScriptModel.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, "command line", {}, data)
        lines = [ln.replace("clips[0].", "") for ln in lines]
        raise ConfigError(lines[0], lines=lines) from None
    return resolve(script)


def slug(text: str, limit: int = 40) -> str:
    """A safe clip name from free text."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "clip"


def is_finite_number(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
