"""Ingest's pipeline: files are read and chunked ahead on one helper thread
(:func:`read_ahead`, bounded by the chunks waiting), and written to the stores on another,
in order (:class:`OrderedWriter`), while the current group of chunks is embedded (SQLite,
Chroma and onnxruntime release the GIL).

The writer's queue is bounded, so embedding never runs more than ``depth`` files ahead of the writes
(memory stays flat on a big corpus), and a failed write stops the pipeline: the error is
raised in the caller's thread at its next ``put`` or at ``close``, and nothing queued after
it is written (each file is listed as unfinished until its write completes, as before).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


def read_ahead(
    items: Iterable[T],
    work: Callable[[T], R],
    weight: Callable[[R], int],
    limit: int,
    name: str = "rag-reader",
) -> Iterator[R]:
    """``work(item)`` for each item, in order, computed on one helper thread ahead of the
    consumer while the results waiting hold less than ``limit`` (by ``weight``; one result is
    always let through): the chunks of the next files are made while the current ones are
    embedded, instead of between.  A ``work`` that fails raises at its item; when the
    consumer stops early, the helper stops after the item it is on."""
    ready: deque[tuple[bool, Any, int]] = deque()  # (ok, result or error, weight)
    held = 0
    stop = False
    changed = threading.Condition()

    def produce() -> None:
        nonlocal held
        try:
            for item in items:
                result = work(item)
                size = weight(result)
                with changed:
                    while held and held + size > limit and not stop:
                        changed.wait()
                    if stop:
                        return
                    ready.append((True, result, size))
                    held += size
                    changed.notify_all()
        except BaseException as exc:  # raised again in the consumer's thread
            with changed:
                ready.append((False, exc, 0))
                changed.notify_all()
            return
        with changed:
            ready.append((True, _DONE, 0))
            changed.notify_all()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            with changed:
                while not ready:
                    changed.wait()
                ok, got, size = ready.popleft()
                held -= size
                changed.notify_all()
            if not ok:
                raise got
            if got is _DONE:
                return
            yield got
    finally:
        with changed:
            stop = True
            changed.notify_all()
        thread.join()


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
