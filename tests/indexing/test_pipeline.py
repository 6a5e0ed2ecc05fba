"""The ingest pipeline's background writer: order kept, errors raised in the caller's
thread, nothing written after a failure, and the embedding never far ahead of the writes."""

from __future__ import annotations

import threading
import time

import pytest

from rag.indexing.pipeline import OrderedWriter, read_ahead


def test_items_are_written_in_order_on_another_thread() -> None:
    written: list[int] = []
    threads: set[str] = set()

    def write(n: int) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.001 * (n % 3))
        written.append(n)

    with OrderedWriter(write) as writer:
        for n in range(50):
            writer.put(n)
    assert written == list(range(50))
    assert threads == {"rag-writer"}


def test_a_failed_write_is_raised_to_the_caller_and_stops_the_rest() -> None:
    written: list[int] = []

    def write(n: int) -> None:
        if n == 3:
            raise OSError(28, "No space left on device")
        written.append(n)

    with pytest.raises(OSError, match="No space"), OrderedWriter(write, depth=2) as writer:
        for n in range(100):
            writer.put(n)
    assert written == [0, 1, 2]


def test_the_callers_error_wins_and_queued_items_are_dropped() -> None:
    release, started = threading.Event(), threading.Event()
    written: list[int] = []

    def write(n: int) -> None:
        started.set()
        release.wait(5)
        written.append(n)

    with pytest.raises(KeyError), OrderedWriter(write, depth=8) as writer:
        for n in range(5):
            writer.put(n)
        assert started.wait(5)  # item 0 is being written
        threading.Timer(0.3, release.set).start()  # after the block has failed
        raise KeyError("embedding failed")
    assert written == [0]  # the one being written finishes; the rest are not written


def test_the_queue_bounds_how_far_the_caller_runs_ahead() -> None:
    gate = threading.Event()
    put = 0

    def write(n: int) -> None:
        gate.wait(5)

    writer = OrderedWriter(write, depth=2)

    def producer() -> None:
        nonlocal put
        for n in range(10):
            writer.put(n)
            put += 1

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.5)
    assert put <= 3  # one being written, two waiting
    gate.set()
    thread.join(5)
    writer.close()
    assert put == 10


def test_read_ahead_keeps_order_and_runs_ahead_within_its_limit() -> None:
    made: list[int] = []
    threads: set[str] = set()

    def work(n: int) -> list[int]:
        threads.add(threading.current_thread().name)
        made.append(n)
        return [n] * (n % 4)  # weight 1 + n % 4

    got = read_ahead(range(40), work, lambda r: 1 + len(r), limit=10)
    assert next(got) == []
    time.sleep(0.3)  # the helper runs ahead while the consumer waits...
    ahead = len(made)
    assert 3 <= ahead <= 8, made  # ...while what waits weighs at most 10
    assert [r for r in got] == [[n] * (n % 4) for n in range(1, 40)]
    assert threads == {"rag-reader"}


def test_read_ahead_raises_a_failed_item_in_order() -> None:
    def work(n: int) -> int:
        if n == 5:
            raise ValueError("unreadable file 5")
        return n

    got: list[int] = []
    with pytest.raises(ValueError, match="file 5"):
        for r in read_ahead(range(20), work, lambda r: 1, limit=100):
            got.append(r)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_helper_when_the_consumer_stops() -> None:
    made: list[int] = []

    def work(n: int) -> int:
        made.append(n)
        return n

    for r in read_ahead(range(10_000), work, lambda r: 1, limit=5):
        if r == 2:
            break
    time.sleep(0.2)
    assert len(made) <= 10  # stopped, not reading the rest
    assert not any(t.name == "rag-reader" for t in threading.enumerate())
