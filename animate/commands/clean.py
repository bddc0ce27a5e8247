"""`animate clean [--out DIR]`: prune the frame store of frames that no manifest entry needs."""
from __future__ import annotations

from pathlib import Path

import click
from animate.errors import OutputError
from animate.outputs.claims import Claims
from animate.outputs.framestore import FrameStore, human_bytes
from animate.outputs.layout import MANIFEST_NAME, Manifest


def needed_render_keys(out: Path) -> set[str]:
    """Render keys of the latest entry of every clip in every script's manifest under `out`, and of every clip
    a process is rendering now (its frames are stored before its manifest line is written)."""

    keys = {record["key"] for record in Claims(out).live() if isinstance(record.get("key"), str)}
    for path in sorted(out.glob(f"*/{MANIFEST_NAME}")):
        for entry in Manifest(path).entries().values():
            if isinstance(entry.get("render_key"), str):
                keys.add(entry["render_key"])
    return keys


@click.command("clean")
@click.option("--out", type=click.Path(path_type=Path), default=Path("outputs"), show_default=True,
              help="Output root whose frame store to prune.")
@click.option("--all", "everything", is_flag=True,
              help="Delete every stored frame. Outputs stay, but adding or changing an output then re-renders its "
                   "clip (minutes on a GPU) instead of re-encoding it (seconds); pair with render --no-keep-frames.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def clean(out: Path, everything: bool, dry_run: bool):
    """Delete stored frames that no manifest entry needs (or all of them with --all)."""

    if out.exists() and not out.is_dir():  # one line, as render says it (click's own error is three)
        raise OutputError("the output root is a file, not a folder", where=f"--out {out}",
                          hint="give the folder you render into")
    store = FrameStore(out)
    keep = set() if everything else needed_render_keys(out)
    count, freed = store.prune(keep, dry_run=dry_run)
    left, size = store.size()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {count} stored clip(s), {human_bytes(freed)}; the frame store holds {left} clip(s), "
               f"{human_bytes(size)}" + (f" ({len(keep)} needed by manifests)" if not everything else ""))
