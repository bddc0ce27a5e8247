"""`animate replay FILE`: re-render a clip from an output's embedded metadata or its JSON sidecar."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from animate.errors import ConfigError
from animate.encode import read_metadata
from animate.events import Events, Terminal
from animate.models.tiny import KIT_VERSION, ensure_kit
from animate.run.runner import run_specs
from animate.spec import ClipSpec
from dataclasses import replace


def spec_from_record(data: dict):
    """Rebuild a ClipSpec from the resolved spec an output carries (sidecar `spec` or embedded JSON)."""

    if not isinstance(data, dict):
        raise ConfigError("the recorded clip spec is not a mapping", hint="replay an output written by animate")
    data = {"script": "", **data}  # outputs carry the spec without the script's path
    for key in ("model", "motion_adapter", "unet"):
        if key in data:
            data[key] = _on_this_machine(data[key])
    if isinstance(data.get("adapters"), list):
        data["adapters"] = [{**a, "source": _on_this_machine(a.get("source"))} if isinstance(a, dict) else a
                            for a in data["adapters"]]
    for key, inner in (("pose", "controlnet"), ("keyframes", "sparsectrl")):  # records holding one source
        if isinstance(data.get(key), dict) and inner in data[key]:
            data[key] = {**data[key], inner: _on_this_machine(data[key][inner])}
    return ClipSpec.from_dict(data)


def _on_this_machine(source):
    """A recorded source with tiny-kit paths (machine-specific) mapped onto this machine's kit."""

    if not isinstance(source, dict) or not isinstance(source.get("ref"), str):
        return source  # from_dict names what is wrong with it
    ref, config = source["ref"], source.get("config")
    match = re.search(r"[/\\]tiny-v(\d+)[/\\](.+)$", ref)
    if not match or Path(ref).exists():
        return source
    if int(match.group(1)) != KIT_VERSION:
        raise ConfigError(f"the clip was made with tiny kit v{match.group(1)}; this install has "
                          f"v{KIT_VERSION}, whose random weights differ", hint="render it again instead")
    kit = ensure_kit()
    out = {**source, "ref": str(kit / match.group(2))}
    if isinstance(config, str) and (m := re.search(r"[/\\]tiny-v\d+[/\\](.+)$", config)):
        out["config"] = str(kit / m.group(1))
    return out


def read_record(path: Path) -> dict:
    """The resolved spec of an output file, a PNG-sequence folder, or a sidecar JSON."""

    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not a JSON sidecar ({exc})", where=str(path)) from None
        return data.get("spec", data)
    text = read_metadata(path)
    if not text:
        sidecar = path.with_suffix(".json") if path.is_file() else path.with_name(path.name + ".json")
        if sidecar.is_file():
            return read_record(sidecar)
        raise ConfigError("carries no animate metadata and has no sidecar next to it", where=str(path),
                          hint="replay an output written by animate (metadata may be stripped by platforms)")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("its embedded metadata is not animate's JSON", where=str(path)) from None


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs"),
              show_default=True, help="Output root; files go to OUT/replay/.")
@click.option("--format", "formats", help="Comma list of formats (default: the clip's own outputs).")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def replay(file, out, formats, device, dtype, quiet):
    """Re-render the clip that FILE (an output or its .json sidecar) was made from."""

    spec = spec_from_record(read_record(file))
    if formats:
        spec = replace(spec, outputs={f.strip(): {} for f in formats.split(",") if f.strip()})
    summary = run_specs([spec], out=out, script_stem="replay", force=True, events=Events(Terminal(quiet=quiet)),
                        device=device, dtype=dtype)
    raise SystemExit(summary.exit_code)
