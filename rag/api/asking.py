"""Running an answer for an HTTP request: on a worker thread, within the request's deadline,
stopped when the client leaves, streamed as Server-Sent Events on request.

The answer service is synchronous; it runs on a small thread pool and reports verified
sentences through ``on_token`` (never the model's unchecked words) and every piece the model
writes through ``on_progress``.  Each run has an event queue on the event loop (token...,
then answer or error).  Stopping a run sets a flag that makes the next ``on_progress`` raise,
which closes the model's stream (for Ollama: the HTTP connection, so the server stops
generating).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from rag.adapters.faults import translate
from rag.adapters.llm.base import LLM
from rag.answering.answer import MAX_QUESTION_CHARS, AnswerService
from rag.answering.conversation import Conversation, Rewrite, history_turn
from rag.api.limits import Gates
from rag.api.metrics import Metrics
from rag.api.schemas import AskRequest, SearchRequest, SearchResponse
from rag.errors import ClientGoneError, DeadlineExceededError, RagError
from rag.models import Answer, Source

log = logging.getLogger(__name__)

Event = tuple[str, Any]  # ("token", str) | ("answer", Answer) | ("error", BaseException)
PING_SECONDS = 15.0
T = TypeVar("T")


class StopGenerationError(Exception):
    """Raised from ``on_token`` to stop the model (client gone or deadline passed)."""


def deadline_error(timeout: float) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"the answer took longer than the request deadline ({timeout:g} s)",
        "raise RAG_REQUEST_TIMEOUT, lower top_k, or use a faster backend",
    )


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client disconnects (the body has been read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class AskRun:
    """One answer in progress: the worker thread emits events, the request consumes them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics, generating: bool):
        self.loop = loop
        self.metrics = metrics
        self.generating = generating
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.consumed = False  # the request received the final event
        self._stop = threading.Event()
        self._get: asyncio.Future[Event] | None = None

    # -- worker side ---------------------------------------------------------------------
    def on_token(self, piece: str) -> None:
        if self._stop.is_set():
            raise StopGenerationError
        self.emit(("token", piece))

    def on_progress(self, written: int) -> None:
        if self._stop.is_set():
            raise StopGenerationError

    def emit(self, event: Event) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone (shutting down)
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- request side ----------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Stop generating (no-op once the answer was delivered)."""
        if self.consumed or self._stop.is_set():
            return
        self._stop.set()
        if self.generating:
            self.metrics.llm_stopped.inc(reason)
            log.info("generation stopped: %s", reason)

    async def next(self, timeout: float, watch: asyncio.Future[None] | None = None) -> Event | None:
        """The next event; None after ``timeout`` s; ClientGoneError if ``watch`` fires."""
        if self._get is None:
            self._get = asyncio.ensure_future(self.events.get())
        waiting: set[asyncio.Future[Any]] = {self._get}
        if watch is not None:
            waiting.add(watch)
        done, _ = await asyncio.wait(
            waiting, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
        )
        if self._get in done:
            got, self._get = self._get, None
            event = got.result()
            if event[0] != "token":
                self.consumed = True
            return event
        if watch is not None and watch in done:
            raise ClientGoneError("the client disconnected")
        return None

    def close(self) -> None:
        if self._get is not None:
            self._get.cancel()
            self._get = None


def standalone(body: AskRequest, llm: LLM | None, service: AnswerService) -> Rewrite | None:
    """A follow-up rewritten from ``body.history`` as `rag chat` does; None if unchanged."""
    if not body.history:
        return None
    turns = [history_turn(t.question, t.answer, t.query) for t in body.history]
    rewrite = Conversation(turns).rewrite(body.question, llm, service.prompts_dir)
    if not rewrite.changed or len(rewrite.query) > MAX_QUESTION_CHARS:
        return None
    return rewrite


def rewritten_note(rewrite: Rewrite) -> str:
    note = f"follow-up rewritten ({rewrite.method}): {rewrite.query}"
    return f"{note}; {rewrite.note}" if rewrite.note else note


class Asker:
    def __init__(self, gates: Gates, metrics: Metrics, workers: int) -> None:
        self.gates = gates
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="rag-ask")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def start(self, service: AnswerService, body: AskRequest, index_version: str) -> AskRun:
        """Start answering on a worker thread (after taking an LLM slot if it generates)."""
        choice = await run_in_threadpool(service.backend, body.backend)
        generating = choice.llm is not None
        gate = self.gates.for_backend(choice.backend) if generating else None
        taken = await gate.acquire() if gate is not None else 0.0
        loop = asyncio.get_running_loop()
        run = AskRun(loop, self.metrics, generating)

        def work() -> None:
            try:
                if run.stopped:  # abandoned while it waited for a worker thread
                    return
                rewrite = standalone(body, choice.llm, service)
                answer = service.ask(
                    body.question if rewrite is None else rewrite.query,
                    top_k=body.top_k,
                    backend=body.backend,
                    on_token=run.on_token,
                    paths=body.paths,
                    on_progress=run.on_progress,
                )
                if rewrite is not None:
                    answer.question, answer.query = rewrite.question, rewrite.query
                    answer.notes.insert(0, rewritten_note(rewrite))
                answer.index_version = index_version
                self.observe(answer)
                run.emit(("answer", answer))
            except BaseException as exc:
                run.emit(("error", exc))
            finally:
                if gate is not None:
                    with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown)
                        asyncio.run_coroutine_threadsafe(gate.release(taken), loop)

        try:
            self.executor.submit(work)
        except BaseException:
            if gate is not None:
                await gate.release(taken)
            raise
        return run

    def observe(self, answer: Answer) -> None:
        self.metrics.retrieval.observe(answer.timings.retrieval_ms / 1000, "ask")
        if answer.backend != "extractive" and answer.prompt_version is not None:
            self.metrics.llm.observe(answer.timings.generation_ms / 1000, answer.backend)


async def first_event(run: AskRun, receive: Receive, deadline: float, timeout: float) -> Event:
    """Wait for the run's first event, stopping it if the client leaves or time runs out."""
    watch = asyncio.ensure_future(wait_disconnect(receive))
    try:
        event = await run.next(deadline - time.monotonic(), watch)
    except ClientGoneError:
        run.stop("disconnect")
        run.close()
        raise
    finally:
        watch.cancel()
    if event is None:
        run.stop("deadline")
        run.close()
        raise deadline_error(timeout)
    return event


async def collect(run: AskRun, receive: Receive, deadline: float, timeout: float) -> Answer:
    """The final answer (tokens are dropped), or the error that ended the run."""
    watch = asyncio.ensure_future(wait_disconnect(receive))
    try:
        while True:
            event = await run.next(deadline - time.monotonic(), watch)
            if event is None:
                run.stop("deadline")
                raise deadline_error(timeout)
            kind, value = event
            if kind == "answer":
                answer: Answer = value
                return answer
            if kind == "error":
                raise value
    except ClientGoneError:
        run.stop("disconnect")
        raise
    finally:
        watch.cancel()
        run.close()


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def error_data(exc: BaseException) -> dict[str, Any]:
    exc = translate(exc) or exc  # a full disk, a damaged index: named as such
    if isinstance(exc, RagError):
        return {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}
    log.error("answer failed: %s", exc.__class__.__name__, exc_info=exc)
    return {
        "error": {
            "code": "internal_error",
            "message": "the server failed to answer",
            "hint": "see the server log",
        }
    }


async def run_events(
    run: AskRun, first: Event, deadline: float, timeout: float
) -> AsyncGenerator[Event | None, None]:
    """The run's events as a stream sends them: tokens, then its answer or error (the last
    event); ``None`` when nothing came for PING_SECONDS (send a keep-alive). Past the
    deadline the run is stopped and a DeadlineExceededError event ends the stream."""
    event: Event | None = first
    while True:
        if event is None and time.monotonic() >= deadline:
            run.stop("deadline")
            yield ("error", deadline_error(timeout))
            return
        yield event
        if event is not None and event[0] != "token":
            return
        event = await run.next(min(PING_SECONDS, deadline - time.monotonic()))


async def sse_events(
    run: AskRun,
    first: Event,
    deadline: float,
    timeout: float,
) -> AsyncIterator[bytes]:
    """token events (each sentence once it passed the citation check), then citations and
    done (or one error event).

    Starlette cancels this generator when the client disconnects; ``finally`` then stops
    the model.
    """
    streamed = False
    try:
        async with contextlib.aclosing(run_events(run, first, deadline, timeout)) as events:
            async for event in events:
                if event is None:
                    yield b": ping\n\n"
                    continue
                kind, value = event
                if kind == "token":
                    streamed = True
                    yield sse("token", {"text": value})
                elif kind == "answer":
                    answer: Answer = value
                    if not streamed:
                        yield sse("token", {"text": answer.answer})
                    citations = [c.model_dump(mode="json") for c in answer.citations]
                    yield sse("citations", {"citations": citations})
                    yield sse("done", answer.model_dump(mode="json"))
                else:
                    yield sse("error", error_data(value))
    finally:
        run.stop("disconnect")
        run.close()


async def in_thread(deadline: float, timeout: float, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread; DeadlineExceededError if it outlasts ``deadline``.

    The thread cannot be killed: past the deadline it is abandoned and finishes alone.
    """
    result: list[T] = []
    with anyio.move_on_after(deadline - time.monotonic()):
        result.append(
            await anyio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)
        )
    if not result:
        raise deadline_error(timeout)
    return result[0]


def search_passages(
    service: AnswerService, metrics: Metrics, index_version: Callable[[], str], body: SearchRequest
) -> SearchResponse:
    """Retrieval only (no LLM): what POST /v1/search returns.  Blocking: run it in a thread."""
    started = time.perf_counter()
    found = service.retrieve(body.query, body.top_k, body.paths, cross=body.read)
    seconds = time.perf_counter() - started
    metrics.retrieval.observe(seconds, "search")
    return SearchResponse(
        query=body.query,
        passages=[Source.of(p) for p in found.passages],
        index_version=index_version(),
        retrieval_ms=round(seconds * 1000, 1),
    )
