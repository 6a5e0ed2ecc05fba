"""One writer per index folder, across processes: an advisory ``flock`` on a lock file.

Embedded Chroma is not safe for two processes on one path, so whoever writes the index (an
ingest, a watcher, the API server) holds this lock.  A second writer is refused within
``timeout`` seconds with a message naming the holder (pid, command, since when); it never
hangs.  The kernel drops the lock when its holder dies, even by ``kill -9``, so a stale
lock cannot block anyone.  Within one process the lock is shared (counted): the server's
ingest jobs run under the lock the server took at start-up.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from rag.errors import IndexLockedError

LOCK_FILE = "write.lock"


@dataclass
class _Held:
    fd: int
    count: int


# Locks this process holds, by lock-file path.  flock is per open file, so a second open
# in the same process would block on itself; this table makes the lock re-entrant.
_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


def holder_of(index_dir: Path) -> dict[str, object] | None:
    """Who holds the lock on ``index_dir`` (as the holder wrote it), or None if free."""
    path = index_dir / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(path: Path) -> dict[str, object]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8") or "{}")
        return raw if isinstance(raw, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict[str, object]) -> str:
    if not info:
        return "another process"
    return (
        f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')})"
    )


def _command() -> str:
    """How this process was started, e.g. ``rag ingest`` (for the holder's description)."""
    argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:2]]
    return " ".join(argv)


class IndexLock:
    """``with IndexLock(index_dir, purpose):`` holds the index's writer lock."""

    def __init__(self, index_dir: Path, purpose: str | None = None, timeout: float = 3.0) -> None:
        self.index_dir = index_dir
        self.path = index_dir / LOCK_FILE
        self.purpose = purpose
        self.timeout = timeout
        self._held = False

    def acquire(self) -> None:
        key = str(self.path.resolve())
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is not None:
                held.count += 1
                self._held = True
                return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise IndexLockedError(
                        f"the index at {self.index_dir} is being written by "
                        f"{describe_holder(_describe(self.path))}",
                        "wait for it to finish, stop it, or send the work to that process "
                        "(a running `rag serve` ingests through POST /v1/ingest)",
                    ) from None
                time.sleep(0.1)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.purpose or _command(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only undescribed
            pass
        with _HELD_LOCK:
            _HELD[key] = _Held(fd, 1)
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        key = str(self.path.resolve())
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[key]
        try:
            os.ftruncate(held.fd, 0)
        finally:
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)

    def __enter__(self) -> IndexLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
