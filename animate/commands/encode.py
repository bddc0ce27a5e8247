"""`animate encode INPUT --format F`: write new outputs from frames already rendered."""
from __future__ import annotations

import json
from pathlib import Path

import click
from animate.encode import FORMATS, encode_with_report, output_path
from animate.outputs.readback import read_frames


def _formats(values: tuple[str, ...]) -> list[str]:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names))


@click.command("encode")
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "-f", "formats", multiple=True, required=True,
              help="Output format(s): gif, mp4, webm, webp, png, prores, ffv1, sheet; repeat or comma-separate.")
@click.option("--fps", type=float, default=None, help="Playback rate (float ok, e.g. 12.5); default: the input's.")
@click.option("--target", default=None, help="Platform preset for gif/mp4, e.g. x, discord-emoji, reels.")
@click.option("--max-bytes", type=int, default=None, help="Custom size budget in bytes (gif/mp4).")
@click.option("--interpolate", type=click.IntRange(1, 8), default=1, help="Multiply frame count and fps.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: beside the input).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per output.")
def encode_command(input: Path, formats, fps, target, max_bytes, interpolate, out_dir, as_json):
    """Re-encode INPUT (frame folder, video, GIF or clip sidecar JSON) without rendering."""

    names = _formats(formats)
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise click.UsageError(f"--format: unknown {', '.join(unknown)}; valid: {', '.join(sorted(FORMATS))}")
    for flag, value in (("--target", target), ("--max-bytes", max_bytes)):
        if value is not None and any(n not in ("gif", "mp4") for n in names):
            raise click.UsageError(f"{flag} applies to gif and mp4 only, got --format {','.join(names)}")
    if fps is not None and not 0 < fps <= 240:
        raise click.UsageError(f"--fps must be in (0, 240], got {fps:g}")
    frames, in_fps = read_frames(input)
    fps = fps or in_fps
    out_dir = out_dir or input.parent
    stem = input.stem if input.is_file() else input.name
    for name in names:
        options = {"interpolate": interpolate}
        if target is not None:
            options["target"] = target
        if max_bytes is not None:
            options["max_bytes"] = max_bytes
        dest = out_dir / (f"{stem}-{target}" if target else stem)
        if output_path(name, dest).resolve() == input.resolve():  # never overwrite the source
            dest = dest.with_name(dest.name + "-reencoded")
        path, report = encode_with_report(name, frames, dest, fps=fps, **options)
        if as_json:
            click.echo(json.dumps({"event": "output", "path": str(path), **report}))
        else:
            click.echo(f"{name}: {path} ({report['bytes']:,} bytes, {report['frames']} frames @ {report['fps']:g} fps)")
