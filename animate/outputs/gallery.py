"""The gallery: one self-contained index.html per script, every clip playing beside how it was made.

Opened straight from the file system: no server, no network, no external CSS/JS/fonts. Everything shown is
escaped (prompts are user text) and every link is a URL-quoted relative path.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from animate.util.atomic import atomic_file

IMAGE_EXTS = ("webp", "gif", "apng", "png")
# WebM first: every Chromium build plays VP9, some (without proprietary codecs) lack H.264; Safari takes MP4.
VIDEO_EXTS = ("webm", "mp4", "m4v")
VIDEO_TYPES = {"webm": "video/webm", "mp4": "video/mp4", "m4v": "video/mp4"}

CSS = """
:root { color-scheme: dark; --bg: #17181a; --card: #222326; --line: #33353a; --text: #e6e6e6;
        --dim: #9a9ca3; --accent: #8ab4f8; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; background: var(--bg); color: var(--text);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: baseline; gap: 12px; margin: 0 0 20px; }
h1 { font-size: 20px; margin: 0; font-weight: 600; }
header span { color: var(--dim); }
main { display: grid; gap: 18px; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); }
article { background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden;
          display: flex; flex-direction: column; }
.media { background: #0e0e10; display: flex; align-items: center; justify-content: center;
         aspect-ratio: 1 / 1; }
.media img, .media video { width: 100%; height: 100%; object-fit: contain; display: block; }
.media .none { color: var(--dim); }
.body { padding: 12px 14px 14px; display: flex; flex-direction: column; gap: 8px; }
h2 { font-size: 15px; margin: 0; font-weight: 600; word-break: break-all; }
h2 small { color: var(--dim); font-weight: 400; margin-left: 6px; }
.prompt { margin: 0; white-space: pre-wrap; word-break: break-word; }
.prompt dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 2px 8px; }
.prompt dt { color: var(--dim); font-variant-numeric: tabular-nums; }
.prompt dd { margin: 0; }
table { border-collapse: collapse; font-size: 12.5px; color: var(--dim); }
td { padding: 1px 10px 1px 0; vertical-align: top; word-break: break-word; }
td:last-child { color: var(--text); }
nav { display: flex; flex-wrap: wrap; gap: 6px; }
nav a { color: var(--accent); text-decoration: none; border: 1px solid var(--line); border-radius: 6px;
        padding: 2px 8px; font-size: 12.5px; }
nav a:hover { background: var(--line); }
"""


def href(relative: str | os.PathLike) -> str:
    """A relative link: forward slashes, every other reserved character percent-quoted."""
    text = PurePosixPath(Path(relative).as_posix()).as_posix()
    return quote(text, safe="/")


def _ext(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".")


def choose_preview(preview: str | None, outputs: list[str]) -> tuple[str, list[str]]:
    """("img", [path]) or ("video", [paths in play order]) or ("none", [])."""
    candidates = ([preview] if preview else []) + [o for o in outputs if o != preview]
    videos = sorted({c for c in candidates if _ext(c) in VIDEO_EXTS},
                    key=lambda c: (VIDEO_EXTS.index(_ext(c)), candidates.index(c)))
    if preview and _ext(preview) in IMAGE_EXTS:
        return "img", [preview]
    if preview and _ext(preview) in VIDEO_EXTS:
        return "video", videos
    for ext in IMAGE_EXTS[:2]:  # animated images play everywhere
        for candidate in candidates:
            if _ext(candidate) == ext:
                return "img", [candidate]
    if videos:
        return "video", videos
    return "none", []


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _prompt_html(prompt: str | dict | None) -> str:
    if isinstance(prompt, dict):
        def order(item):
            key = str(item[0])
            return (0, int(key)) if key.isdigit() else (1, key)
        rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in sorted(prompt.items(), key=order))
        return f'<div class="prompt"><dl>{rows}</dl></div>'
    return f'<p class="prompt">{_esc(prompt or "")}</p>'


def _media_html(entry: dict) -> str:
    kind, paths = choose_preview(entry.get("preview"), list(entry.get("outputs") or []))
    label = _esc(f"{entry.get('name', '')} seed {entry.get('seed', '')}")
    if kind == "img":
        return f'<img src="{_esc(href(paths[0]))}" alt="{label}">'
    if kind == "video":
        sources = "".join(f'<source src="{_esc(href(p))}" type="{VIDEO_TYPES[_ext(p)]}">' for p in paths)
        return f'<video autoplay loop muted playsinline aria-label="{label}">{sources}</video>'
    return '<span class="none">no preview</span>'


def _card_html(entry: dict) -> str:
    name, seed = entry.get("name", ""), entry.get("seed")
    anchor = f"{name}-s{seed}" if seed is not None else str(name)
    params = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_format_value(v))}</td></tr>"
                     for k, v in (entry.get("params") or {}).items())
    # An output without an extension is a PNG sequence folder: show it as one.
    links = [(str(p), PurePosixPath(str(p)).name + ("" if _ext(str(p)) else "/"))
             for p in entry.get("outputs") or []]
    if entry.get("sidecar"):
        links.append((str(entry["sidecar"]), "sidecar"))
    nav = "".join(f'<a href="{_esc(href(p))}">{_esc(text)}</a>' for p, text in links)
    seed_html = f"<small>seed {_esc(seed)}</small>" if seed is not None else ""
    width, height = entry.get("width"), entry.get("height")
    shape = (f' style="aspect-ratio: {width} / {height}"'
             if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)) else "")
    return (f'<article id="{_esc(anchor)}"><div class="media"{shape}>{_media_html(entry)}</div>'
            f'<div class="body"><h2>{_esc(name)}{seed_html}</h2>{_prompt_html(entry.get("prompt"))}'
            f"<table>{params}</table><nav>{nav}</nav></div></article>")


def render_gallery(entries: list[dict], title: str = "animate") -> str:
    """The gallery page as text."""
    count = f"{len(entries)} clip" + ("" if len(entries) == 1 else "s")
    cards = "\n".join(_card_html(e) for e in entries)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{CSS}</style></head>\n"
            f"<body><header><h1>{_esc(title)}</h1><span>{count}</span></header>\n"
            f"<main>\n{cards}\n</main>\n</body></html>\n")


def write_gallery(layout_or_dir, entries: list[dict], title: str | None = None) -> Path:
    """Write `index.html` atomically into an OutputLayout's root or a folder; return its path.

    Each entry: name, seed, prompt (text or {frame: text}), params {label: value}, preview, outputs and
    sidecar as paths relative to the gallery's folder; optional width and height shape the preview box.
    """
    if hasattr(layout_or_dir, "gallery"):
        dest, default_title = Path(layout_or_dir.gallery), layout_or_dir.script_stem
    else:
        dest = Path(layout_or_dir) / "index.html"
        default_title = Path(layout_or_dir).name or "animate"
    with atomic_file(dest) as tmp:
        tmp.write_text(render_gallery(entries, title or default_title), encoding="utf-8")
    return dest
