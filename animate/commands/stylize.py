"""`animate stylize VIDEO --prompt ...`: video-to-video in one command. By default the output has the source's
frame count, fps and size, so it drops onto the editor's timeline in place of the source: it renders at the size
rounded up to a multiple of 8 (the source padded 1:1, `init_video.fit: pad`) and crops back on output."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from animate.run.limits import CLI_HELP as LIMIT_HELP
from animate.commands.common import specs_from_command_line, terminate_like_ctrl_c
from animate.errors import ConfigError
from animate.events import Events, JsonLines, Terminal
from animate.rendering.video_input import probe
from animate.run.limits import Limits, check_limits
from animate.run.runner import run_specs


MAX_FRAMES = 1024  # ClipSpec.frames' limit


def round_up_8(n: int) -> int:
    return max(8, -(-n // 8) * 8)


def stylize_fields(video: Path, *, prompt: str, strength: float | None, fps: float | None) -> dict:
    """The clip fields of a stylize run: the source's frames, rate and size (rounded up to 8, padded)."""

    info = probe(video, fps=fps, where="VIDEO")
    rate = fps or info.fps
    if not rate:
        raise ConfigError(f"{str(video)!r} is a folder of frames with no clock", where="--fps",
                          hint="give --fps (the rate its frames were shot at)")
    if info.frames > MAX_FRAMES:
        raise ConfigError(f"{str(video)!r} has {info.frames} frames; a clip holds at most {MAX_FRAMES}", where="VIDEO",
                          hint="cut the shot into parts (or write a script with init_video.start per part)")
    init = {"source": str(video), "fit": "pad"}
    if strength is not None:
        init["strength"] = strength
    if fps is not None:
        init["fps"] = fps
    # The rate as the frame count over the duration: a variable-rate source keeps its length.
    return {"prompt": prompt, "init_video": init, "frames": info.frames, "fps": round(float(rate), 6),
            "width": round_up_8(info.width), "height": round_up_8(info.height)}


@click.command()
@click.argument("video", type=click.Path(exists=True, path_type=Path))
@click.option("--prompt", required=True, help="What the video should look like.")
@click.option("--strength", type=float, help="0–1: how far from the source (default 0.6).")
@click.option("--preset", help="Preset name or YAML path; a comma list merges in order (e.g. lcm,editing).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("outputs"), show_default=True,
              help="Output root; files go to OUT/stylize/.")
@click.option("--name", help="File name of the clip (default: the video's name).")
@click.option("--fps", type=float, help="A folder of frames: its frame rate (a video: overrides its timestamps).")
@click.option("--negative", help="Negative prompt.")
@click.option("--model", help="Base model: hub id, folder, .safetensors, or `tiny`.")
@click.option("--motion-adapter", "motion_adapter", help="Motion adapter source.")
@click.option("--lora", multiple=True, metavar="SOURCE[:WEIGHT]", help="A LoRA to mix in (repeatable).")
@click.option("--lcm", "lcm_lora", metavar="SOURCE[:WEIGHT]", help="The LCM-LoRA slot (e.g. lcm-lora-sd15).")
@click.option("--scheduler", help="lcm | animatelcm | lightning | ddim | euler | euler-a | dpm++2m")
@click.option("--steps", type=int, help="Denoising steps run (see docs/editing.md on strength).")
@click.option("--guidance", type=float)
@click.option("--seed", type=int, multiple=True, help="Seed (repeat for one clip per seed).")
@click.option("--format", "formats", help="Comma list of outputs, e.g. mp4,png,prores.")
@click.option("--force", is_flag=True, help="Render even when the output is up to date.")
@click.option("--json", "json_events", is_flag=True, help="One JSON event per line on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help="auto | cuda | cuda:N | mps | cpu")
@click.option("--dtype", default="auto", show_default=True, help="auto | fp32 | fp16 | bf16")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE", help=LIMIT_HELP)
@click.pass_context
def stylize(ctx, video, prompt, strength, out, name, fps, lora, lcm_lora, formats, force, json_events, quiet,
            device, dtype, limit_items, **flags):
    """Restyle VIDEO (a video file or a folder of frames) from --prompt, frame for frame."""

    ctx.meta["json_events"] = json_events
    limits = Limits.parse(limit_items)
    fields = stylize_fields(video, prompt=prompt, strength=strength, fps=fps)
    flags = {**flags, **{k: v for k, v in fields.items() if k != "prompt"}}
    specs, _, _, _ = specs_from_command_line(None, prompt, name or video.stem, (), lora, lcm_lora, formats, flags,
                                              limits)
    check_limits(specs, limits, None)
    events = Events(JsonLines() if json_events else None, Terminal(quiet=quiet))
    terminate_like_ctrl_c()
    try:
        summary = run_specs(specs, out=out, script_stem="stylize", force=force, events=events, device=device,
                            dtype=dtype, limits=limits)
    finally:
        events.close()
    sys.exit(summary.exit_code)
