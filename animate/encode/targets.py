"""Platform limits as data: one row per (format, platform). Figures are the widely cited ones as of 2025;
platforms change them, so each row names its source and the user can always pass `max_bytes` instead."""
from __future__ import annotations

from dataclasses import dataclass

from animate.encode.base import did_you_mean, shown
from animate.errors import EncodeError

KB, MB = 1000, 1000 * 1000


@dataclass(frozen=True)
class Target:
    """Limits an output must meet for one platform; None means the platform sets no limit we enforce."""

    name: str
    fmt: str  # "gif" | "mp4"
    max_bytes: int | None
    max_width: int | None = None
    max_height: int | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    min_fps: float | None = None
    max_fps: float | None = None
    aspect: tuple[int, int] | None = None  # pad (never crop/stretch) to this width:height
    source: str = ""


TARGETS: dict[tuple[str, str], Target] = {(t.fmt, t.name): t for t in [
    # --- GIF ---
    Target("x", "gif", 15 * MB, 1280, 1080,
           source="help.x.com 'How to post images and GIFs': GIFs up to 15 MB (web), 1280×1080"),
    Target("discord", "gif", 10 * MB,
           source="support.discord.com 'File upload limits': 10 MB per file for non-Nitro users since 2025"),
    Target("discord-emoji", "gif", 256 * KB, 128, 128,
           source="support.discord.com 'Custom emoji': up to 256 KB, 128×128 recommended"),
    Target("slack-emoji", "gif", 128 * KB, 128, 128,
           source="slack.com/help 'Add custom emoji': image under 128 KB, square ~128×128"),
    Target("reddit", "gif", 20 * MB,
           source="reddithelp.com 'What types of media can I upload': images/GIFs up to 20 MB"),
    # --- MP4 ---
    Target("reels", "mp4", 4000 * MB, 1080, 1920, min_seconds=3, max_seconds=90, min_fps=24, max_fps=60,
           aspect=(9, 16), source="help.instagram.com Reels specs: 9:16, 1080×1920, ≥3 s, 23–60 fps, ≤4 GB"),
    Target("tiktok", "mp4", 287 * MB, 1080, 1920, min_seconds=3, max_seconds=600, min_fps=24, max_fps=60,
           aspect=(9, 16), source="TikTok creator specs: 9:16, 1080×1920, 3 s–10 min, ≤287.6 MB (iOS app)"),
    Target("shorts", "mp4", 256 * 1000 * MB, 1080, 1920, min_seconds=3, max_seconds=180, min_fps=24,
           max_fps=60, aspect=(9, 16),
           source="support.google.com/youtube 'Upload YouTube Shorts': vertical or square, up to 3 min"),
    Target("x", "mp4", 512 * MB, 1920, 1200, min_seconds=3, max_seconds=140, min_fps=24, max_fps=60,
           source="developer.x.com media best practices: ≤512 MB, ≤1920×1200, 0.5–140 s, ≤60 fps "
                  "(we keep ≥3 s and ≥24 fps so short AI loops play as video, not a flicker)"),
]}


def get_target(fmt: str, name) -> Target:
    """The row for `name` on `fmt`; an unknown name lists the valid ones (with a did-you-mean)."""
    found = TARGETS.get((fmt, name)) if isinstance(name, str) else None
    if found is None:
        names = target_names(fmt)
        hint = did_you_mean(name, names)
        hint += f"valid targets: {', '.join(names)}" if names else "use max_bytes"
        raise EncodeError(f"unknown target {shown(name)} for {fmt}", where=f"outputs.{fmt}.target", hint=hint)
    return found


def check_target(fmt: str, key: str, value) -> str | None:
    """Rule for the `target` option: None or a target name known for `fmt`."""
    if value is not None:
        get_target(fmt, value)
    return value


def target_names(fmt: str | None = None) -> list[str]:
    return sorted(f"{f}:{n}" if fmt is None else n for f, n in TARGETS if fmt in (None, f))
