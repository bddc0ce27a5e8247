"""Submitted scripts and clips → checked ClipSpecs, with the same checks (and error lines) as `animate render`,
plus the server's own rule: a local path named anywhere in a submission (preset, model, adapter, config, pose
source, init video, keyframe image, reel audio) lies inside a configured input root (or is the offline kit behind
a `tiny*` name; or, for pose, init_video and keyframe sources, a file uploaded to this server)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from animate.errors import ConfigError
from animate.spec import Script, parse_script, presets_dir, resolve, slug
from animate.server.config import ServeConfig
from animate.models.tiny import kit_dir
from animate.run.checks import check_specs
from animate.spec.clipspec import labeled_sources
import json

STEM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SUFFIXES = {"json": ".json", "yaml": ".yaml", "yml": ".yaml", "toml": ".toml"}
FIELDS = {"controlnet": "pose.controlnet"}  # labeled_sources' labels that are not the script's field names


@dataclass
class PostedScript(Script):
    """A script that arrived as text: errors name `<stem><suffix>`, relative paths resolve in `folder`."""

    folder: Path = Path(".")

    @property
    def base_dir(self) -> Path:
        return self.folder


@dataclass
class Submission:
    stem: str  # the output folder: <out>/<stem>/
    suffix: str
    text: str


def suffix_for(content_type: str | None) -> str:
    """.json for a JSON body, .toml for TOML, else YAML (JSON is YAML too)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    for word, suffix in SUFFIXES.items():
        if kind.endswith(word):
            return suffix
    return ".yaml"


def checked_stem(stem: str | None, default: str = "serve") -> str:
    stem = stem or default
    if not STEM_RE.fullmatch(stem):
        raise ConfigError(f"script name {stem!r} is not allowed", where="script",
                          hint="use lowercase letters, digits, '.', '_' and '-' (at most 64)")
    return stem


def clip_script(fields: dict) -> str:
    """One clip's fields (as in a script's clip) as the JSON text of a one-clip script."""

    if not isinstance(fields, dict):
        raise ConfigError("a clip must be a JSON object of clip fields", where="clip")
    fields = {k: v for k, v in fields.items() if v not in (None, "", [], {})}
    if "name" not in fields and isinstance(fields.get("prompt"), (str, dict)):
        prompt = fields["prompt"] if isinstance(fields["prompt"], str) else \
            next(iter(fields["prompt"].values()), "clip")
        fields = {"name": slug(str(prompt)) or "clip", **fields}
    return json.dumps({"version": 1, "clips": [fields]}, ensure_ascii=False, indent=1)


def load_submission(sub: Submission, config: ServeConfig) -> tuple[PostedScript, list]:
    """(the validated script, its ClipSpecs) after every check `animate render` makes before a model loads."""

    limits = config.limits
    size = len(sub.text.encode("utf-8"))
    where = f"{sub.stem}{sub.suffix}"
    if limits.script is not None and size > limits.script:
        raise ConfigError(f"script is {size} bytes, more than the limit of {limits.script}", where=where,
                          hint="split it into several scripts")
    parsed = parse_script(sub.text, where=where, suffix=sub.suffix, path=Path(where), max_bytes=limits.script)
    script = PostedScript(path=parsed.path, model=parsed.model, positions=parsed.positions, folder=config.base_dir)
    check_presets(script, config)
    specs = resolve(script)
    check_paths(script, specs, config)
    check_specs(specs, out=config.out, limits=limits, script=script)
    return script, specs


def allowed_roots(config: ServeConfig) -> list[Path]:
    """Where model sources (and their configs) may lie: the input roots and the offline kit."""

    return [*config.input_roots, kit_dir().resolve()]


def file_roots(config: ServeConfig) -> list[Path]:
    """Where input files (pose, init_video and keyframe sources) may lie: the input roots and the uploads folder
    (`POST /api/uploads`), the one place under the output root a script may read from."""
    return [*config.input_roots, config.uploads]


def inside(path: str | os.PathLike, roots: list[Path]) -> bool:
    resolved = Path(path).expanduser().resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


def _refuse(script: Script, field: str, value: str, config: ServeConfig, upload: bool = False) -> ConfigError:
    roots = ", ".join(str(r) for r in config.input_roots) or "none configured"
    hint = f"put the file under an input root ({roots}; `animate serve --input-root DIR`)"
    if upload:
        hint += ", or upload it (POST /api/uploads?name=FILE) and name the `source` that returns"
    return ConfigError(f"{field}: {value!r} is outside the server's input roots", where=str(script.path), hint=hint)


def check_presets(script: Script, config: ServeConfig) -> None:
    """A preset given as a path is read while resolving: refuse one outside the input roots before that."""
    layers = [("defaults.preset", script.model.defaults)] + [
        (f"clips[{i}].preset", clip) for i, clip in enumerate(script.model.clips)]
    for field, layer in layers:
        value = getattr(layer, "preset", None) if layer is not None else None
        for name in [value] if isinstance(value, str) else list(value or []):
            builtin = re.fullmatch(r"[a-z0-9._-]+", name) and (presets_dir() / f"{name}.yaml").exists()
            if not builtin and not inside(config.base_dir / name, config.input_roots):
                raise _refuse(script, field, name, config)


def check_paths(script: Script, specs: list, config: ServeConfig) -> None:
    """Every local model source and config folder inside the allowed roots; every pose file, init video and
    keyframe image inside the input roots or the uploads; the reel's audio inside the input roots."""

    roots, files = allowed_roots(config), file_roots(config)
    for spec in specs:
        sources = [(f"adapters.{name}" if label == "adapter" else FIELDS.get(label, label), src)
                   for label, name, src in labeled_sources(spec)]
        if spec.pose:
            for value in _strings(spec.pose.source):
                candidate = config.base_dir / value
                if _exists(candidate) and not inside(candidate, files):
                    raise _refuse(script, f"clip {spec.name}: pose.source", value, config, upload=True)
        if spec.init_video and not inside(spec.init_video.source, files):
            raise _refuse(script, f"clip {spec.name}: init_video.source", spec.init_video.source, config,
                          upload=True)
        for frame, image in sorted(spec.keyframes.images.items() if spec.keyframes else ()):
            if not inside(image, files):
                raise _refuse(script, f"clip {spec.name}: keyframes[{frame}]", image, config, upload=True)
        for field, src in sources:
            if src.kind in ("folder", "file") and not inside(src.ref, roots):
                raise _refuse(script, f"clip {spec.name}: {field}", src.ref, config)
            if src.config and _exists(src.config) and not inside(src.config, roots):
                raise _refuse(script, f"clip {spec.name}: {field}.config", src.config, config)
    reel = script.model.reel_options() or {}
    if reel.get("audio") and not inside(config.base_dir / reel["audio"], config.input_roots):
        raise _refuse(script, "reel.audio", reel["audio"], config)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _exists(path) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):
        return False
