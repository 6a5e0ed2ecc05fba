"""What the MCP tools do: ask, search, read_lines, list_documents, index_status, a document.

Each one is the HTTP API's service under another transport, on the same ``Services`` (one
Runtime, one loaded model): ``ask`` is POST /v1/ask's run (the same answer object, stopped
when the call is cancelled), ``search`` is /v1/search, ``read_lines`` follows GET /v1/lines'
rules (documents of the allowed roots only; no ``..``, no absolute path, no link out), and
``index_status`` is /readyz.  Arguments are checked by the API's own request models, so the
limits are the API's.  Failures raise :class:`RagError`; :mod:`rag.mcp.server` turns them
into tool errors.  An output longer than ``OUTPUT_CHARS`` is cut, with a note saying how to
get the rest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Message

from rag.answering.answer import AnswerService
from rag.api.asking import collect, in_thread, search_passages
from rag.api.deps import Services
from rag.api.documents import DocumentInfo
from rag.api.lines import MAX_SPAN, DocumentLines, Line, document_lines
from rag.api.readiness import readiness
from rag.api.routes.ask import start_run
from rag.api.schemas import DOC_PATH, AskRequest, Prefix, Readiness, SearchRequest, SearchResponse
from rag.errors import InputError, RagError
from rag.models import Answer

log = logging.getLogger(__name__)

OUTPUT_CHARS = 40_000  # about 10k tokens: what agents (Claude Code...) take without a warning
LINE_CHARS = OUTPUT_CHARS // 2
READ_WINDOW = 200  # lines read_lines returns when no end_line is given
PAGE = 100  # documents per list_documents call
M = TypeVar("M", bound=BaseModel)


class LinesRequest(BaseModel):
    """read_lines' arguments: GET /v1/lines' parameters."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(min_length=1, max_length=4096, pattern=DOC_PATH)]
    start_line: Annotated[int, Field(ge=1, strict=True)] = 1
    end_line: Annotated[int | None, Field(ge=1, strict=True)] = None


class ListRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: Prefix | None = None
    offset: Annotated[int, Field(ge=0, strict=True)] = 0


class Passages(SearchResponse):
    note: str | None = Field(None, description="Set when passages were left out, and why.")


class Lines(DocumentLines):
    note: str | None = Field(
        None, description="Set when the document goes on past `end`: how to read the rest."
    )


class DocumentPage(BaseModel):
    documents: list[DocumentInfo]
    total: int = Field(description="Documents the index holds (matching the prefix).")
    chunks: int = Field(description="Chunks of those documents.")
    index_version: str
    next_offset: int | None = Field(None, description="Pass as offset for the next page.")


def check(model: type[M], **given: Any) -> M:
    """``given`` (None: not given) checked by ``model``; an InputError naming each bad field
    and its rule (never the value) otherwise."""
    try:
        return model.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise invalid(exc) from None


def invalid(exc: ValidationError) -> InputError:
    """Arguments that broke a rule: each field and its rule, never the value."""
    problems = "; ".join(
        f"{'.'.join(str(p)[:40] for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors(include_input=False)[:10]
    )
    return InputError(problems, "the tool's input schema gives each argument's limits")


def _check_question(question: Any) -> None:
    if isinstance(question, str) and not question.strip():
        raise InputError("the question is empty", "ask something, e.g. 'When did ...?'")


async def _never_gone() -> Message:
    """An ASGI ``receive`` that never reports a disconnect: a cancelled tool call (the client
    cancelled it, or left) is seen as the cancellation itself."""
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


class Warmup:
    """Loads the models and opens the index once, on a thread, so the first question does
    not wait for it while the transport has long been answering (stdio: the client's
    handshake comes first).  Failures are only logged: each call reports its own."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()
        self._done: Future[None] | None = None

    def start(self) -> Future[None]:
        with self._lock:
            if self._done is None:
                self._done = Future()
                threading.Thread(target=self._run, name="rag-mcp-warmup", daemon=True).start()
            return self._done

    def _run(self) -> None:
        assert self._done is not None
        try:
            self.services.answer_service()
            choice = self.services.runtime.default_backend
            log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
        except RagError as exc:
            log.warning("not ready: %s (%s)", exc.message, exc.hint)
        except Exception:
            log.exception("warming up failed")
        finally:
            self._done.set_result(None)

    async def wait(self) -> None:
        await asyncio.wrap_future(self.start())


class Tools:
    """The tools over ``services``; ``warmup``: None when the runtime is warm already
    (`rag serve` loads it before it serves)."""

    def __init__(self, services: Services, warmup: Warmup | None = None) -> None:
        self.services = services
        self.settings = services.runtime.settings
        self.warmup = warmup

    async def _service(self) -> AnswerService:
        if self.warmup is not None:
            await self.warmup.wait()
        return await anyio.to_thread.run_sync(self.services.answer_service)

    def _deadline(self) -> tuple[float, float]:
        timeout = self.settings.request_timeout
        return time.monotonic() + timeout, timeout

    async def ask(self, question: Any, paths: Any = None, top_k: Any = None) -> Answer:
        _check_question(question)
        body = check(AskRequest, question=question, paths=paths, top_k=top_k)
        service = await self._service()
        deadline, timeout = self._deadline()
        run = await start_run(service, self.services, body)
        try:
            return await collect(run, _never_gone, deadline, timeout)
        finally:
            run.stop("disconnect")  # cancelled: stop generating (no-op once answered)

    async def search(self, query: Any, paths: Any = None, top_k: Any = None) -> Passages:
        if isinstance(query, str) and not query.strip():
            raise InputError("the query is empty", "say what to look for, e.g. 'visit 2000'")
        body = check(SearchRequest, query=query, paths=paths, top_k=top_k)
        service = await self._service()
        deadline, timeout = self._deadline()
        services = self.services
        found = await in_thread(
            deadline,
            timeout,
            search_passages,
            service,
            services.metrics,
            services.documents.index_version,
            body,
        )
        result = Passages.model_validate(found.model_dump())
        used, kept = 0, 0
        for passage in result.passages:
            used += len(passage.text) + 200
            if kept and used > OUTPUT_CHARS:
                break
            kept += 1
        if kept < len(result.passages):
            result.note = (
                f"{len(result.passages) - kept} more passage(s) left out (output limit); "
                "ask for a smaller top_k, or narrow `paths`"
            )
            result.passages = result.passages[:kept]
        return result

    def _lines(self, path: str, start: int, end: int | None) -> DocumentLines:
        manifest = self.services.documents.manifest()
        return document_lines(
            self.services.policy, manifest, path, start, end, 0, self.settings.max_file_bytes
        )

    async def read_lines(self, path: Any, start_line: Any = None, end_line: Any = None) -> Lines:
        given = check(LinesRequest, path=path, start_line=start_line, end_line=end_line)
        start = given.start_line
        end = given.end_line if given.end_line is not None else start + READ_WINDOW - 1
        deadline, timeout = self._deadline()
        got = await in_thread(deadline, timeout, self._lines, given.path, start, end)
        result = Lines.model_validate(got.model_dump())
        _clip(result.lines)
        kept = _fits(result.lines)
        if kept < len(result.lines):
            result.lines = result.lines[:kept]
            result.end = result.lines[-1].number
        if result.end < result.total and (kept < len(got.lines) or given.end_line is None):
            cut = "output limit" if kept < len(got.lines) else f"{READ_WINDOW} lines a call"
            result.note = (
                f"lines {start}-{result.end} of {result.total} ({cut}); call read_lines with "
                f"start_line={result.end + 1} for the rest"
            )
        return result

    async def list_documents(self, prefix: Any = None, offset: Any = None) -> DocumentPage:
        given = check(ListRequest, prefix=prefix, offset=offset)
        documents = self.services.documents
        prefixes = [given.prefix] if given.prefix else None
        docs = await anyio.to_thread.run_sync(documents.documents, prefixes)
        version = await anyio.to_thread.run_sync(documents.index_version)
        page = docs[given.offset : given.offset + PAGE]
        following = given.offset + len(page)
        return DocumentPage(
            documents=page,
            total=len(docs),
            chunks=sum(d.chunks for d in docs),
            index_version=version,
            next_offset=following if following < len(docs) else None,
        )

    async def index_status(self) -> Readiness:
        if self.warmup is not None:
            await self.warmup.wait()
        return await anyio.to_thread.run_sync(readiness, self.services)

    async def document_text(self, path: str) -> str:
        """The document's numbered lines (``   12  text``), cut at the output limit."""
        deadline, timeout = self._deadline()
        got = await in_thread(deadline, timeout, self._lines, path, 1, MAX_SPAN)
        _clip(got.lines)
        kept = _fits(got.lines)
        width = len(str(got.total))
        text = "\n".join(f"{line.number:>{width}}  {line.text}" for line in got.lines[:kept])
        last = got.lines[kept - 1].number if kept else 0
        if last < got.total:
            text += (
                f"\n[lines 1-{last} of {got.total}: the read_lines tool with "
                f"start_line={last + 1} gives the rest]"
            )
        return text

    def document_paths(self, limit: int) -> list[str]:
        """The first ``limit`` documents the index lists (none while it has no index)."""
        try:
            return [d.path for d in self.services.documents.documents()][:limit]
        except RagError:
            return []


def _clip(lines: list[Line]) -> None:
    """A line longer than half the output limit (minified code, a table in one line) is cut."""
    for line in lines:
        if len(line.text) > LINE_CHARS:
            line.text = f"{line.text[:LINE_CHARS]} [... cut: {len(line.text)} characters]"


def _fits(lines: list[Any], budget: int = OUTPUT_CHARS) -> int:
    """How many of ``lines`` (at least one) fit in ``budget`` characters of output."""
    used = 0
    for i, line in enumerate(lines):
        used += len(line.text) + 60  # its number, page and the JSON around it
        if i and used > budget:
            return i
    return len(lines)
