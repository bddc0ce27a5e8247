"""What the commands that read scripts share: loading a script within the limits, building specs from command-line
flags (`--prompt`, `--lora`, ...), and turning SIGTERM into Ctrl-C so finished clips are kept."""
from __future__ import annotations
import re
from pathlib import Path

import click

from animate.errors import ConfigError
from animate.run.limits import check_script_size
from animate.spec import load_script, resolve, slug, spec_from_fields
import signal
import threading


def terminate_like_ctrl_c() -> None:
    """SIGTERM (a scheduler, `kill`, a container stop) ends a run the way Ctrl-C does: temp files are removed,
    finished clips are kept, exit code 1."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def specs_from_command_line(script, prompt, name, only, lora, lcm_lora, formats, flags, limits):
    """(specs, output folder name, reel options, the loaded Script or None) from a script or from --prompt and
    flags."""

    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "preset" in overrides and "," in overrides["preset"]:
        overrides["preset"] = [p.strip() for p in overrides["preset"].split(",") if p.strip()]
    if "seed" in overrides:
        seeds = list(overrides["seed"])
        overrides["seed"] = seeds[0] if len(seeds) == 1 else seeds
    adapters = []
    if lcm_lora:
        adapters.append({**parse_lora(lcm_lora, 0, flag="--lcm"), "name": "lcm", "kind": "lcm"})
    for i, value in enumerate(lora):
        entry = parse_lora(value, i + 1)
        taken = {a["name"] for a in adapters}
        base, n = entry["name"], 2
        while entry["name"] in taken:  # two files both called pytorch_lora_weights.safetensors
            entry["name"], n = f"{base}-{n}", n + 1
        adapters.append(entry)
    if adapters:
        overrides["adapters"] = adapters
    if formats:
        overrides["outputs"] = [f.strip() for f in formats.split(",") if f.strip()]
    if script and prompt:
        raise click.UsageError("give a SCRIPT or --prompt, not both")
    if script:
        loaded = load_checked_script(script, limits)
        return resolve(loaded, overrides, only=list(only)), loaded.stem, \
            (loaded.model.reel_options() if not only else None), loaded
    if prompt:
        # --prompt clips: <out>/prompts/<name>.<ext>
        return spec_from_fields({**overrides, "prompt": prompt}, name=name or slug(prompt)), "prompts", None, None
    raise click.UsageError("give a SCRIPT to render, or --prompt TEXT")


def parse_lora(value: str, index: int, flag: str = "--lora") -> dict:
    """SOURCE[:WEIGHT] → an adapter entry. A colon followed by a path (a Windows drive letter, a URL) is part
    of the source; `owner/name@revision` pins a hub revision."""
    source, weight = value, 1.0
    head, sep, tail = value.rpartition(":")
    if sep and head and "/" not in tail and "\\" not in tail:  # `C:\x`, `C:/x`, `https://...` hold paths
        try:
            weight = float(tail)
        except ValueError:
            drive = len(head) == 1 and head.isalpha()  # C:x.safetensors
            if not drive and not Path(value).exists():  # a file whose name holds a colon is a source
                raise ConfigError(f"weight {tail!r} is not a number", where=f"{flag} {value}",
                                  hint=f"use SOURCE:WEIGHT like {head}:0.8") from None
        else:
            source = head

    path = Path(source)
    # A file's own name, or its folder's when the file has a generic name (pytorch_lora_weights...).
    generic = path.stem in ("pytorch_lora_weights", "diffusion_pytorch_model", "adapter_model")
    stem = (path.parent.name if generic else path.stem) if source.endswith(".safetensors") else path.name
    pinned = HUB_REVISION.match(source)
    if pinned:
        stem = pinned["repo"].rsplit("/", 1)[1]
        source = {"source": pinned["repo"], "revision": pinned["revision"]}
    return {"name": slug(stem, 30) or f"lora{index}", "source": source, "weight": weight}


def load_checked_script(script: Path, limits):
    """The script, read only when it is a regular file within the `script` limit."""

    if script.is_file():
        check_script_size(script, limits)
    return load_script(script, max_bytes=limits.script)


HUB_REVISION = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<revision>[^\s:@]+)$")
