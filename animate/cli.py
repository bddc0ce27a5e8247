"""The `animate` command: a thin click group; heavy imports happen inside commands."""
from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path

import click

from .errors import AnimateError, ConfigError
from .limits import CLI_HELP as LIMIT_HELP


class Group(click.Group):
    """Turns every AnimateError into one line on stderr and its exit code (2 for user mistakes); with `--json`
    the same problem is also an `error` event on stdout."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AnimateError as exc:
            self._report(ctx, exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(1)
        except OSError as exc:  # a fault of the machine outside a run's own handling: still one line
            from .run import machine_fault

            fault = machine_fault(exc)
            if fault is None or os.environ.get("ANIMATE_DEBUG"):
                raise
            self._report(ctx, fault)

    @staticmethod
    def _report(ctx, exc: AnimateError):
        if ("--json" in sys.argv[1:] or ctx.meta.get("json_events")) and not getattr(exc, "reported", False):
            from .events import JsonLines, error_events

            sink = JsonLines()
            for event in error_events(exc, fatal=True):
                sink(event)
        for line in exc.line().splitlines():
            click.echo(f"error: {line}", err=True)
        ctx.exit(exc.exit_code)


def terminate_like_ctrl_c() -> None:
    """SIGTERM (a scheduler, `kill`, a container stop) ends a run the way Ctrl-C does: temp files are removed,
    finished clips are kept, exit code 1."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def quiet_libraries() -> None:
    """Keep library chatter (load bars, deprecation notes) out of the tool's own output."""
    for var in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(var, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(peft|diffusers|transformers|huggingface_hub)\b.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("diffusers", "transformers"):
        if name in sys.modules:  # already imported (tests, notebooks): switch their loggers directly
            module = sys.modules[name]
            module.utils.logging.set_verbosity_error()
            module.utils.logging.disable_progress_bar()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="animate")
def main():
    """Turn prompt scripts into short AnimateDiff clips (GIF, MP4, editing formats)."""
    quiet_libraries()


HUB_REVISION = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<revision>[^\s:@]+)$")


def _parse_lora(value: str, index: int, flag: str = "--lora") -> dict:
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
    from .spec import slug

    path = Path(source)
    # A file's own name, or its folder's when the file has a generic name (pytorch_lora_weights...).
    generic = path.stem in ("pytorch_lora_weights", "diffusion_pytorch_model", "adapter_model")
    stem = (path.parent.name if generic else path.stem) if source.endswith(".safetensors") else path.name
    pinned = HUB_REVISION.match(source)
    if pinned:
        stem = pinned["repo"].rsplit("/", 1)[1]
        source = {"source": pinned["repo"], "revision": pinned["revision"]}
    return {"name": slug(stem, 30) or f"lora{index}", "source": source, "weight": weight}



FLAG_FIELDS = ("preset", "model", "motion_adapter", "scheduler", "steps", "guidance", "frames", "fps", "width",
               "height", "seed", "negative")


@main.command()
@click.argument("script", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("outputs"), show_default=True,
              help="Output root; files go to OUT/<script name>/.")
@click.option("--only", multiple=True, help="Render only this clip (repeatable).")
@click.option("--force", is_flag=True, help="Render even clips that are already done.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; render nothing.")
@click.option("--json", "json_events", is_flag=True, help="One JSON event per line on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help="auto | cuda | cuda:N | mps | cpu")
@click.option("--dtype", default="auto", show_default=True, help="auto | fp32 | fp16 | bf16")
@click.option("--compile", "compile_unet", is_flag=True,
              help="torch.compile the UNet once per model stack (faster GPU steps after a slow first clip).")
@click.option("--keep-frames/--no-keep-frames", default=True, show_default=True,
              help="Keep rendered frames in OUT/.frames so changed outputs re-encode without rendering.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Render here, or on a pool of Ray workers (pip install \"animate[ray]\").")
@click.option("--address", help="With --backend ray: the Ray head to join (host:6379); default: a local Ray.")
@click.option("--gpus-per-worker", "gpus_per_worker", type=float, default=1.0, show_default=True,
              help="With --backend ray: GPUs each worker holds (0: CPU workers; 0.5: two per GPU).")
@click.option("--workers", type=int, help="With --backend ray: how many workers (default: as many as fit).")
@click.option("--prompt", help="Render one clip from this prompt instead of a script.")
@click.option("--name", help="File name of the --prompt clip (default: from the prompt).")
@click.option("--preset", help="Preset name or YAML path; a comma list merges in order (e.g. lcm,reels).")
@click.option("--model", help="Base model: hub id, folder, .safetensors, or `tiny`.")
@click.option("--motion-adapter", "motion_adapter", help="Motion adapter source.")
@click.option("--lora", multiple=True, metavar="SOURCE[:WEIGHT]", help="A LoRA to mix in (repeatable).")
@click.option("--lcm", "lcm_lora", metavar="SOURCE[:WEIGHT]", help="The LCM-LoRA slot (e.g. lcm-lora-sd15).")
@click.option("--scheduler", help="lcm | animatelcm | lightning | ddim | euler | euler-a | dpm++2m")
@click.option("--steps", type=int)
@click.option("--guidance", type=float)
@click.option("--frames", type=int)
@click.option("--fps", type=float)
@click.option("--width", type=int)
@click.option("--height", type=int)
@click.option("--seed", type=int, multiple=True, help="Seed (repeat for one clip per seed).")
@click.option("--negative", help="Negative prompt.")
@click.option("--format", "formats", help="Comma list of outputs, e.g. gif,mp4,png.")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE", help=LIMIT_HELP)
@click.pass_context
def render(ctx, script, out, only, force, dry_run, json_events, quiet, device, dtype, compile_unet, keep_frames,
           backend, address, gpus_per_worker, workers, prompt, name, lora, lcm_lora, formats, limit_items, **flags):
    """Render SCRIPT (YAML/JSON/TOML), or one clip from --prompt and flags."""
    from .events import Events, JsonLines, Terminal
    from .limits import Limits
    from .run import run_specs

    ctx.meta["json_events"] = json_events
    if compile_unet and backend == "ray":
        raise click.UsageError("--compile needs --backend local (Ray workers build their own pipelines)")
    limits = Limits.parse(limit_items)
    specs, stem, reel, loaded = _specs_from_command_line(script, prompt, name, only, lora, lcm_lora, formats, flags,
                                                         limits)
    events = Events(JsonLines() if json_events else None, Terminal(quiet=quiet or dry_run))
    pool = _backend(ctx, backend, address, gpus_per_worker, workers)
    if dry_run:
        _print_check(specs, stem, out, device, dtype, events if json_events else None, limits, loaded, backend=pool,
                     reel=reel)
        return
    terminate_like_ctrl_c()
    try:
        summary = run_specs(specs, out=out, script_stem=stem, force=force, events=events, device=device,
                            dtype=dtype, reel=reel, base_dir=script.parent if script else ".",
                            keep_frames=keep_frames, backend=pool, limits=limits, compile_unet=compile_unet,
                            script=loaded)
    finally:
        events.close()
    sys.exit(summary.exit_code)


def _specs_from_command_line(script, prompt, name, only, lora, lcm_lora, formats, flags, limits):
    """(specs, output folder name, reel options, the loaded Script or None) from a script or from --prompt and
    flags."""
    from .spec import resolve, slug, spec_from_fields

    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "preset" in overrides and "," in overrides["preset"]:
        overrides["preset"] = [p.strip() for p in overrides["preset"].split(",") if p.strip()]
    if "seed" in overrides:
        seeds = list(overrides["seed"])
        overrides["seed"] = seeds[0] if len(seeds) == 1 else seeds
    adapters = []
    if lcm_lora:
        adapters.append({**_parse_lora(lcm_lora, 0, flag="--lcm"), "name": "lcm", "kind": "lcm"})
    for i, value in enumerate(lora):
        entry = _parse_lora(value, i + 1)
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
        loaded = _load(script, limits)
        return resolve(loaded, overrides, only=list(only)), loaded.stem, \
            (loaded.model.reel_options() if not only else None), loaded
    if prompt:
        # --prompt clips: <out>/prompts/<name>.<ext>
        return spec_from_fields({**overrides, "prompt": prompt}, name=name or slug(prompt)), "prompts", None, None
    raise click.UsageError("give a SCRIPT to render, or --prompt TEXT")


def _backend(ctx, name: str, address, gpus_per_worker: float, workers):
    """The render backend the flags ask for (None: this process)."""
    if name == "ray":
        from .ray_backend import RayBackend

        return RayBackend(address=address, gpus_per_worker=gpus_per_worker, workers=workers)
    source = ctx.get_parameter_source
    given = [flag for flag, param in (("--address", "address"), ("--gpus-per-worker", "gpus_per_worker"),
                                      ("--workers", "workers"))
             if source(param) is not None and source(param).name == "COMMANDLINE"]
    if given:
        raise click.UsageError(f"{given[0]} needs --backend ray")
    return None


def _load(script: Path, limits):
    """The script, read only when it is a regular file within the `script` limit."""
    from .limits import check_script_size
    from .spec import load_script

    if script.is_file():
        check_script_size(script, limits)
    return load_script(script, max_bytes=limits.script)


def _print_check(specs, stem: str, out: Path, device: str, dtype: str, events, limits=None, loaded=None,
                 backend=None, reel=None) -> dict:
    """Every check `render` makes before loading (animate.checks.preflight), then the plan: which clips are up to
    date and which outputs would be encoded."""
    from .checks import preflight
    from .plan import print_plan
    from .run import compute_target

    def target() -> tuple[str, str]:
        try:
            return backend.target(device, dtype) if backend is not None else compute_target(device, dtype)
        except AnimateError:  # a device this machine lacks: the plan is still worth printing
            return device, dtype

    # LoRAs fit their slots and the output root takes files; unreachable hub ids are warnings in the plan.
    checked = preflight(specs, out=out, script_stem=stem, target=target, limits=limits, script=loaded, reel=reel,
                        reachable=False)
    return print_plan(specs, jobs=checked.jobs, device=checked.device, dtype=checked.dtype,
                      out=checked.layout.root, store=checked.store, events=events)


@main.command()
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("outputs"), show_default=True,
              help="Output root to compare against (what is up to date, what would be encoded).")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--json", "json_events", is_flag=True)
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE", help=LIMIT_HELP)
@click.pass_context
def check(ctx, script, out, device, dtype, json_events, limit_items):
    """Validate SCRIPT and print the plan; renders nothing."""
    from .events import Events, JsonLines
    from .limits import Limits
    from .spec import resolve

    ctx.meta["json_events"] = json_events
    limits = Limits.parse(limit_items)
    loaded = _load(script, limits)
    _print_check(resolve(loaded), loaded.stem, out, device, dtype, Events(JsonLines()) if json_events else None,
                 limits, loaded, reel=loaded.model.reel_options())


@main.group()
def models():
    """Model helpers."""


@models.command("tiny")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Copy the kit here.")
def models_tiny(out):
    """Build the tiny offline model kit (random weights, real SD1.5/AnimateDiff shapes)."""
    from .tiny import ensure_kit, export_kit

    path = export_kit(out) if out else ensure_kit()
    click.echo(str(path))


@models.command("list")
def models_list():
    """Well-known model names a script may use."""
    from .models import KNOWN_MODELS, TINY_MODELS

    for name, info in sorted(KNOWN_MODELS.items()):
        click.echo(f"{name:26} {info['ref']}{' (' + info['weight_name'] + ')' if info.get('weight_name') else ''}")
    for name, (rel, role, _) in sorted(TINY_MODELS.items()):
        click.echo(f"{name:26} offline kit: {rel}")


@main.command()
def presets():
    """List the built-in presets."""
    from .spec import list_presets

    for name, text in list_presets().items():
        click.echo(f"{name:14} {text}")


@main.command()
def schema():
    """Print the JSON Schema of prompt scripts."""
    from .spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def _add_optional_commands() -> None:
    # Commands living in their own modules; each is light to import.
    import importlib

    for module, attr in (("animate.commands.encode", "encode_command"), ("animate.commands.poses", "poses"),
                         ("animate.commands.replay", "replay"), ("animate.commands.clean", "clean"),
                         ("animate.commands.stylize", "stylize"),
                         ("animate.server.command", "serve")):
        try:
            main.add_command(getattr(importlib.import_module(module), attr))
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


_add_optional_commands()

if __name__ == "__main__":
    main()


__all__ = ["main", "ConfigError"]
