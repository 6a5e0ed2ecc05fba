"""A bound on concurrent LLM generations: a few run, a few wait briefly, the rest are refused.

Queueing without bound would let latency grow until every client times out; instead a
question that finds ``slots`` generations running and ``queue`` questions waiting is refused
at once (429), and one that waited ``wait`` seconds without a slot gives up (503).  Both
carry Retry-After, estimated from how long recent generations held their slot.
"""

from __future__ import annotations

import asyncio
import math
import time

from rag.api.metrics import Metrics
from rag.errors import OverloadedError


class Gate:
    def __init__(self, name: str, slots: int, queue: int, wait: float, metrics: Metrics) -> None:
        self.name = name
        self.slots = slots
        self.queue = queue
        self.wait = wait
        self.metrics = metrics
        self.running = 0
        self.waiting = 0
        self._free: asyncio.Condition | None = None
        self._held_avg = 5.0  # seconds a generation holds a slot (moving average)

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self._held_avg * (1 + self.waiting) / self.slots))

    async def acquire(self) -> float:
        """Take a slot (returns the time it was taken) or raise OverloadedError."""
        if self._free is None:
            self._free = asyncio.Condition()
        if self.running >= self.slots and self.waiting >= self.queue:
            self.metrics.llm_rejected.inc("queue_full")
            raise OverloadedError(
                f"the {self.name} backend is busy: {self.running} answer(s) being generated and "
                f"{self.waiting} question(s) waiting",
                "retry after the number of seconds in Retry-After",
                429,
                self.retry_after,
            )
        self.waiting += 1
        try:
            async with self._free:
                await asyncio.wait_for(
                    self._free.wait_for(lambda: self.running < self.slots), self.wait
                )
                self.running += 1
        except TimeoutError:
            self.metrics.llm_rejected.inc("wait_timeout")
            raise OverloadedError(
                f"the {self.name} backend stayed busy for {self.wait:g} s",
                "retry after the number of seconds in Retry-After, or raise RAG_LLM_CONCURRENCY",
                503,
                self.retry_after,
            ) from None
        finally:
            self.waiting -= 1
        return time.monotonic()

    async def release(self, taken: float) -> None:
        held = time.monotonic() - taken
        self._held_avg = 0.8 * self._held_avg + 0.2 * held
        assert self._free is not None
        async with self._free:
            self.running -= 1
            self._free.notify()


class Gates:
    """One gate per generating backend: llama.cpp runs in-process and one at a time."""

    def __init__(self, slots: int, queue: int, wait: float, metrics: Metrics) -> None:
        self._args = (slots, queue, wait)
        self._metrics = metrics
        self._gates: dict[str, Gate] = {}

    def for_backend(self, backend: str) -> Gate:
        gate = self._gates.get(backend)
        if gate is None:
            slots, queue, wait = self._args
            if backend == "llamacpp":
                slots = 1  # one llama.cpp context is not safe to use from two threads
            gate = self._gates[backend] = Gate(backend, slots, queue, wait, self._metrics)
        return gate

    def running(self) -> int:
        return sum(g.running for g in self._gates.values())
