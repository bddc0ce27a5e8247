"""`animate replay FILE`: re-render a clip from an output's embedded metadata or its JSON sidecar."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from animate.errors import ConfigError


def spec_from_record(data: dict):
    """Rebuild a ClipSpec from the resolved spec an output carries (sidecar `spec` or embedded JSON)."""
    from animate.models import Source
    from animate.script import ClipSpec
    from animate.tiny import KIT_VERSION, ensure_kit

    def source(d):
        if d is None:
            return None
        ref, config = d["ref"], d.get("config")
        # Tiny-kit paths are machine-specific: map them onto this machine's kit of the same version.
        match = re.search(r"[/\\]tiny-v(\d+)[/\\](.+)$", ref)
        if match and not Path(ref).exists():
            if int(match.group(1)) != KIT_VERSION:
                raise ConfigError(f"the clip was made with tiny kit v{match.group(1)}; this install has "
                                  f"v{KIT_VERSION}, whose random weights differ", hint="render it again instead")
            kit = ensure_kit()
            ref = str(kit / match.group(2))
            if config and (m := re.search(r"[/\\]tiny-v\d+[/\\](.+)$", config)):
                config = str(kit / m.group(1))
        return Source(ref=ref, kind=d["kind"], revision=d.get("revision"), weight_name=d.get("weight_name"),
                      config=config, allow_pickle=bool(d.get("allow_pickle", False)))

    try:
        fields = dict(data)
        fields["model"] = source(fields["model"])
        fields["motion_adapter"] = source(fields["motion_adapter"])
        fields["adapters"] = tuple((a["name"], source(a["source"]), _weight(a["weight"]), a["kind"])
                                   for a in fields["adapters"])
        if fields.get("pose"):
            fields["pose"] = {**fields["pose"], "controlnet": source(fields["pose"]["controlnet"])}
        for key in ("prompt", "negative"):
            if isinstance(fields.get(key), dict):  # JSON turned frame numbers into strings
                fields[key] = {int(k): v for k, v in fields[key].items()}
        fields.setdefault("script", "")
        known = set(ClipSpec.__dataclass_fields__)
        return ClipSpec(**{k: v for k, v in fields.items() if k in known})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the recorded clip spec is incomplete or from another version ({exc})") from None


def _weight(value):
    return (float(value["start"]), float(value["end"])) if isinstance(value, dict) else float(value)


def read_record(path: Path) -> dict:
    """The resolved spec of an output file, a PNG-sequence folder, or a sidecar JSON."""
    from animate.encode import read_metadata

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
    from dataclasses import replace

    from animate.events import Events, Terminal
    from animate.run import run_specs

    spec = spec_from_record(read_record(file))
    if formats:
        spec = replace(spec, outputs={f.strip(): {} for f in formats.split(",") if f.strip()})
    summary = run_specs([spec], out=out, script_stem="replay", force=True, events=Events(Terminal(quiet=quiet)),
                        device=device, dtype=dtype)
    raise SystemExit(summary.exit_code)
