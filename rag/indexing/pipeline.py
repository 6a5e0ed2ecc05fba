"""Ingest's pipeline: files are written to the stores on one background thread, in order,
while the next group of chunks is embedded (SQLite, Chroma and onnxruntime release the GIL).

The queue is bounded, so embedding never runs more than ``depth`` files ahead of the writes
(memory stays flat on a big corpus), and a failed write stops the pipeline: the error is
raised in the caller's thread at its next ``put`` or at ``close``, and nothing queued after
it is written (each file is listed as unfinished until its write completes, as before).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class OrderedWriter(Generic[T]):
    """``with OrderedWriter(write) as w: w.put(item)`` runs ``write(item)`` for every item on
    one thread, in the order put; leaving the block waits for all of them."""

    def __init__(self, write: Callable[[T], None], depth: int = 4, name: str = "rag-writer"):
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._stop.is_set():
                continue  # failed or abandoned: drain without writing
            try:
                self._write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc
                self._stop.set()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (waits while the queue is full); raises a write's error."""
        self._raise_if_failed()
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                self._raise_if_failed()

    def close(self, abandon: bool = False) -> None:
        """Wait until everything queued is written (``abandon``: what is not yet being
        written is dropped); raises a write's error."""
        if abandon:
            self._stop.set()
        self._queue.put(_DONE)
        self._thread.join()
        self._raise_if_failed()

    def __enter__(self) -> OrderedWriter[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        with contextlib.suppress(BaseException):  # the body's error is the one to report
            self.close(abandon=True)
