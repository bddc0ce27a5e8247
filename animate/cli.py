"""The `animate` command: a thin click group; heavy imports happen inside commands."""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from animate.errors import AnimateError, ConfigError
from animate.run.limits import CLI_HELP as LIMIT_HELP
from animate.commands.common import load_checked_script, specs_from_command_line, terminate_like_ctrl_c
from animate.events import Events, JsonLines, Terminal, error_events
from animate.models.sources import KNOWN_MODELS, TINY_MODELS
from animate.models.tiny import ensure_kit, export_kit
from animate.run.limits import Limits
from animate.run.plan import print_plan
from animate.run.preflight import preflight
from animate.run.ray_backend import RayBackend
from animate.run.runner import compute_target, machine_fault, run_specs
from animate.spec import json_schema, list_presets, resolve
import importlib


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

            fault = machine_fault(exc)
            if fault is None or os.environ.get("ANIMATE_DEBUG"):
                raise
            self._report(ctx, fault)

    @staticmethod
    def _report(ctx, exc: AnimateError):
        if ("--json" in sys.argv[1:] or ctx.meta.get("json_events")) and not getattr(exc, "reported", False):
            sink = JsonLines()
            for event in error_events(exc, fatal=True):
                sink(event)
        for line in exc.line().splitlines():
            click.echo(f"error: {line}", err=True)
        ctx.exit(exc.exit_code)


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

    ctx.meta["json_events"] = json_events
    if compile_unet and backend == "ray":
        raise click.UsageError("--compile needs --backend local (Ray workers build their own pipelines)")
    limits = Limits.parse(limit_items)
    specs, stem, reel, loaded = specs_from_command_line(script, prompt, name, only, lora, lcm_lora, formats, flags,
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


def _backend(ctx, name: str, address, gpus_per_worker: float, workers):
    """The render backend the flags ask for (None: this process)."""
    if name == "ray":
        return RayBackend(address=address, gpus_per_worker=gpus_per_worker, workers=workers)
    source = ctx.get_parameter_source
    given = [flag for flag, param in (("--address", "address"), ("--gpus-per-worker", "gpus_per_worker"),
                                      ("--workers", "workers"))
             if source(param) is not None and source(param).name == "COMMANDLINE"]
    if given:
        raise click.UsageError(f"{given[0]} needs --backend ray")
    return None


def _print_check(specs, stem: str, out: Path, device: str, dtype: str, events, limits=None, loaded=None,
                 backend=None, reel=None) -> dict:
    """Every check `render` makes before loading (animate.run.preflight), then the plan: which clips are up to
    date and which outputs would be encoded."""

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

    ctx.meta["json_events"] = json_events
    limits = Limits.parse(limit_items)
    loaded = load_checked_script(script, limits)
    _print_check(resolve(loaded), loaded.stem, out, device, dtype, Events(JsonLines()) if json_events else None,
                 limits, loaded, reel=loaded.model.reel_options())


@main.group()
def models():
    """Model helpers."""


@models.command("tiny")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Copy the kit here.")
def models_tiny(out):
    """Build the tiny offline model kit (random weights, real SD1.5/AnimateDiff shapes)."""

    path = export_kit(out) if out else ensure_kit()
    click.echo(str(path))


@models.command("list")
def models_list():
    """Well-known model names a script may use."""

    for name, info in sorted(KNOWN_MODELS.items()):
        click.echo(f"{name:26} {info['ref']}{' (' + info['weight_name'] + ')' if info.get('weight_name') else ''}")
    for name, (rel, role, _) in sorted(TINY_MODELS.items()):
        click.echo(f"{name:26} offline kit: {rel}")


@main.command()
def presets():
    """List the built-in presets."""

    for name, text in list_presets().items():
        click.echo(f"{name:14} {text}")


@main.command()
def schema():
    """Print the JSON Schema of prompt scripts."""

    click.echo(json.dumps(json_schema(), indent=2))


def _add_optional_commands() -> None:
    # Commands living in their own modules; each is light to import.

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
