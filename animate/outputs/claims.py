"""Claims: before rendering a render key, a process claims it in the output folder, so several processes on one
output root split the work instead of doing it twice.

A claim is `<out>/.claims/<render key>.claim`, a small JSON file with its owner (host, pid, token) and a
heartbeat time that a background thread refreshes. A claim is taken over when its owner is a process on this
host (and pid namespace) that no longer runs, or when its heartbeat is older than `stale_after` seconds (an
owner on another host, or one that hangs). Taking and taking over happen under an exclusive lock (an flock on
the `.claims` folder itself), so two processes never both win the same key."""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from animate.util.hosts import pid_alive, this_host
from animate.outputs.layout import CLAIMS_DIR

HEARTBEAT_S = float(os.environ.get("ANIMATE_CLAIM_HEARTBEAT", "5"))
STALE_S = float(os.environ.get("ANIMATE_CLAIM_STALE", "60"))

try:
    import fcntl
except ImportError:  # Windows: no flock, so claims there do not exclude each other
    fcntl = None


class Claim:
    """A held claim; `release()` gives it back. The heartbeat thread keeps it fresh until then."""

    def __init__(self, store: "Claims", key: str, token: str):
        self.store, self.key, self.token = store, key, token
        self.lost = False  # set when another process took the claim over (we looked dead or hung)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim-{key[:8]}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.store.heartbeat):
            try:
                fresh = self.store._refresh(self.key, self.token)
            except OSError:  # a full disk: a missed beat, not a lost claim (the run reports the disk itself)
                continue
            if not fresh:
                self.lost = True
                return

    def held(self) -> bool:
        """Whether this process still owns the claim, looked up now (the look is a heartbeat too): a run that
        hung past the stale time may find its clip taken over by another process, which then records it."""
        if not self.lost:
            try:
                self.lost = not self.store._refresh(self.key, self.token)
            except OSError:  # a full disk: not a sign of a takeover (the records' own write reports the disk)
                pass
        return not self.lost

    def release(self) -> None:
        self._stop.set()
        self.store._release(self.key, self.token)


class Claims:
    """The claims of one output root."""

    def __init__(self, out_root: str | os.PathLike, *, heartbeat: float = HEARTBEAT_S, stale_after: float = STALE_S):
        self.root = Path(out_root) / CLAIMS_DIR
        self.heartbeat = heartbeat
        self.stale_after = max(stale_after, 2 * heartbeat)
        self.host = this_host()
        self.pid = os.getpid()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.claim"

    @contextlib.contextmanager
    def _locked(self):
        """Hold the exclusive lock of the claims folder (an flock on the folder itself, so no lock file is left
        behind; `tidy` may remove the folder, so the lock is retried until it holds the folder now there)."""
        while True:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.root, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:  # a Ctrl-C here must not leak a locked descriptor: every later lock would wait on it
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.root).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)  # releases the lock

    def tidy(self) -> None:
        """Remove the claims folder once no claim is left in it (a run leaves no bookkeeping behind)."""
        if not self.root.is_dir():
            return
        with contextlib.suppress(OSError), self._locked():
            os.rmdir(self.root)  # fails while any claim (or another process's temp record) is in it

    def owner(self, key: str) -> dict | None:
        """The claim's record, or None when nobody holds it (or the file is unreadable: a torn write)."""
        try:
            data = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def is_live(self, record: dict | None) -> bool:
        if not record:
            return False
        if record.get("host") == self.host and not pid_alive(int(record.get("pid", -1))):
            return False
        return time.time() - float(record.get("heartbeat", 0)) < self.stale_after

    def try_claim(self, key: str) -> Claim | None:
        """Claim `key` for this process, taking over a dead or stale claim; None while a live owner holds it."""
        with self._locked():
            if self.is_live(self.owner(key)):  # (this very process too: another job with the same frames)
                return None
            token = uuid.uuid4().hex
            self._write(key, token)
        return Claim(self, key, token)

    def _write(self, key: str, token: str) -> None:
        record = {"key": key, "host": self.host, "pid": self.pid, "token": token, "heartbeat": time.time()}
        tmp = self.root / f".{key}.{token[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path(key))
        except BaseException:  # a full disk: a temp record left here would keep `tidy` from removing the folder
            tmp.unlink(missing_ok=True)
            raise

    def _refresh(self, key: str, token: str) -> bool:
        with self._locked():
            current = self.owner(key)
            if not current or current.get("token") != token:
                return False
            self._write(key, token)
            return True

    def _release(self, key: str, token: str) -> None:
        with self._locked():
            current = self.owner(key)
            if current and current.get("token") == token:
                self.path(key).unlink(missing_ok=True)

    def live(self) -> list[dict]:
        """Every live claim under this root (for `check` and the server)."""
        if not self.root.is_dir():
            return []
        records = [self.owner(p.stem) for p in sorted(self.root.glob("*.claim"))]
        return [r for r in records if self.is_live(r)]
