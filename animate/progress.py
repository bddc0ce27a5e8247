"""Progress reporting: human bars on stderr, or one JSON event per line on stdout (`--json`)."""
from __future__ import annotations

import json
import sys
import time
from typing import Any


class Progress:
    """Receives run events; prints bars (human) or JSON lines (machine). `quiet` silences the human form."""

    def __init__(self, *, json_events: bool = False, quiet: bool = False):
        self.json = json_events
        self.quiet = quiet
        self._bar = None
        self._clips = None

    def event(self, kind: str, **data: Any) -> None:
        if self.json:
            sys.stdout.write(json.dumps({"event": kind, "time": round(time.time(), 3), **data}, default=str) + "\n")
            sys.stdout.flush()
        handler = getattr(self, f"_on_{kind}", None)
        if handler and not self.quiet:
            handler(**data)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr)

    # human output -----------------------------------------------------------
    def _tqdm(self, **kw):
        from tqdm import tqdm

        return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)

    def _on_plan(self, clips=0, **_):
        if isinstance(clips, int):  # a run's plan; `check --json` sends the clip list and draws no bar
            self._clips = self._tqdm(total=clips, desc="clips", unit="clip", position=0)

    def _on_clip_start(self, clip: str = "", steps: int = 0, **_):
        self._bar = self._tqdm(total=steps, desc=clip, unit="step", leave=False, position=1)

    def _on_step(self, step: int = 0, **_):
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def _on_clip_done(self, **_):
        self._close_bar()
        if self._clips is not None:
            self._clips.update(1)

    def _on_clip_skipped(self, **_):
        if self._clips is not None:
            self._clips.update(1)

    def _on_error(self, message: str = "", fatal: bool = False, **_):
        self._close_bar()
        if not fatal:  # a fatal error is printed once, by the command that stops
            print(f"error: {message}", file=sys.stderr)

    def _on_summary(self, **data):
        self._close_bar()
        if self._clips is not None:
            self._clips.close()
            self._clips = None
        done, skipped, failed = data.get("done", 0), data.get("skipped", 0), data.get("failed", 0)
        print(f"{done} rendered, {skipped} up to date, {failed} failed → {data.get('out', '')}", file=sys.stderr)

    def close(self) -> None:
        """Close any open bar (also after an error, so the error line starts clean)."""
        self._close_bar()
        if self._clips is not None:
            self._clips.close()
            self._clips = None

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
