"""The MCP server: rag's tools, resources and prompt for agents (Claude, Cursor, VS Code...).

Built with the official Python SDK (``mcp``) over :class:`rag.mcp.tools.Tools`; served over
stdio by `rag mcp` (:mod:`rag.mcp.stdio`) and over streamable HTTP at ``/mcp`` by `rag serve`
(:mod:`rag.mcp.http`).  Every tool has a description an agent can act on, an input schema
(the HTTP API's limits) and structured output.  A failure is a tool error (``isError``)
whose text is the message and the hint, with ``{code, message, hint}`` (the HTTP API's error
object) in its ``_meta``: never a crashed server.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, ParamSpec, TypeVar, cast
from urllib.parse import quote

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, InputRequiredResult, Resource, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError, WithJsonSchema

from rag import __version__
from rag.api.schemas import AskRequest, Readiness, SearchRequest
from rag.errors import DocumentNotFoundError, PathNotFoundError, RagError
from rag.mcp.tools import (
    READ_WINDOW,
    DocumentPage,
    Lines,
    LinesRequest,
    ListRequest,
    Passages,
    Tools,
    invalid,
)
from rag.models import Answer

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

DOCUMENT_URI = "rag://documents/{+path}"
LISTED_RESOURCES = 1000  # documents resources/list names (list_documents pages through all)
ERROR_META = "rag/error"  # a tool error's {code, message, hint}, as the HTTP API's errors
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
# Hints written for HTTP callers, said the way an MCP client does it.
HINT_WORDS = {
    "GET /v1/documents": "the list_documents tool",
    "POST /v1/ingest": "`rag ingest`",
}

INSTRUCTIONS = """\
rag answers questions from the user's own documents. Every claim in an answer cites file and \
line (citations: path, start_line, end_line, quote, verified), checked against the file; when \
the documents do not say, it abstains (abstained: true) instead of guessing, and `sources` \
holds the closest passages. Use `ask` for questions, `search` to find passages, `read_lines` \
to read around a citation, `list_documents` to see what is indexed. Quote citations as \
path:Lstart-Lend."""

PROMPT = """\
Answer the question below using only the documents that rag's tools return.

1. Call the `ask` tool with the question.
2. If the answer has `abstained: true`, say that the documents do not answer it; you may \
call `search` or `read_lines` on the closest `sources` to check, but never fill the gap from \
your own knowledge.
3. Otherwise give the answer and, after each claim, its citation as path:Lstart-Lend from \
`citations` (only those with `verified: true`). Call `read_lines` on a citation when you need \
the lines around it.
4. Never cite a file or line you did not get from `ask`, `search` or `read_lines`.

Question: {question}"""


def _schema(model: type[BaseModel], name: str, description: str | None = None) -> Any:
    """The JSON schema of ``model``'s field ``name`` (its limits), for a tool argument that
    is checked by ``model`` itself: the client sees the API's rules, a bad value gets rag's
    error (field and rule), not the SDK's."""
    schema = dict(model.model_json_schema()["properties"][name])
    schema.pop("title", None)
    if description is not None:
        schema["description"] = description
    return WithJsonSchema(schema)


def _hint(text: str) -> str:
    for http, mcp in HINT_WORDS.items():
        text = text.replace(http, mcp)
    return text


def error_result(exc: RagError) -> CallToolResult:
    """A tool error: the message and the hint as its text; the HTTP API's error object
    (code, message, hint) in its ``_meta`` under ``ERROR_META``.  No structured content:
    clients check that against the tool's output schema, errors too (the TypeScript SDK)."""
    hint = _hint(exc.hint)
    text = f"{exc.message}\nhint: {hint}" if hint else exc.message
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        is_error=True,
        meta={ERROR_META: {"code": exc.code, "message": exc.message, "hint": hint}},
    )


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``fn`` with rag's errors returned as tool errors (anything else: the SDK's generic
    tool error, the details only in the server log)."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except RagError as exc:
            log.info("tool %s refused: %s", fn.__name__, exc.message)
            return cast(T, error_result(exc))

    return call


class RagServer(MCPServer[Any]):
    """The SDK's server; ``resources/list`` names each indexed document."""

    def __init__(self, tools: Tools, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tools = tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        """Arguments the SDK itself refuses (a required one missing, a wrong type) get rag's
        error too: each field and its rule, never the value."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            return error_result(invalid(exc.__cause__))

    async def list_resources(self) -> list[Resource]:
        import anyio.to_thread

        paths = await anyio.to_thread.run_sync(self.tools.document_paths, LISTED_RESOURCES)
        return [
            Resource(
                uri=f"rag://documents/{quote(path, safe='/')}",
                name=path,
                title=path,
                description="The document's lines, numbered as citations count them.",
                mime_type="text/plain",
            )
            for path in paths
        ] + await super().list_resources()


def build_server(tools: Tools) -> RagServer:
    """The MCP server over ``tools`` (one per process or app; sessions share it)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        if tools.warmup is not None:
            tools.warmup.start()  # the transport is up: load the models while the client waits
        yield

    server = RagServer(
        tools,
        name="rag",
        title="rag: answers from your documents, citing file and line",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(annotations=READ_ONLY, structured_output=True)
    @guarded
    async def ask(
        question: Annotated[Any, _schema(AskRequest, "question", "The question, in words.")],
        paths: Annotated[Any, _schema(AskRequest, "paths")] = None,
        top_k: Annotated[
            Any, _schema(AskRequest, "top_k", "Passages to read (1-100; default 5).")
        ] = None,
    ) -> Answer:
        """Answer a question from the user's documents. Every claim cites file and line
        (citations: path, start_line, end_line, quote, verified); `answer` holds [n] markers
        for citations[n-1]. When the documents do not say, `abstained` is true and
        `sources` holds the closest passages: do not answer from elsewhere. `confidence`
        (0-1) says how sure rag is that the answer is in the documents."""
        return await tools.ask(question, paths, top_k)

    @server.tool(annotations=READ_ONLY, structured_output=True)
    @guarded
    async def search(
        query: Annotated[Any, _schema(SearchRequest, "query", "What to look for.")],
        paths: Annotated[Any, _schema(SearchRequest, "paths")] = None,
        top_k: Annotated[
            Any, _schema(SearchRequest, "top_k", "Passages to return (1-100; default 5).")
        ] = None,
    ) -> Passages:
        """Find passages about a query (no answer, no LLM): each with path, start_line,
        end_line, score and text, best first. Use it to explore; use `ask` for answers."""
        return await tools.search(query, paths, top_k)

    @server.tool(annotations=READ_ONLY, structured_output=True)
    @guarded
    async def read_lines(
        path: Annotated[Any, _schema(LinesRequest, "path", "The document as citations name it.")],
        start_line: Annotated[
            Any, _schema(LinesRequest, "start_line", "First line (1-based).")
        ] = 1,
        end_line: Annotated[
            Any,
            _schema(
                LinesRequest,
                "end_line",
                f"Last line (default: start_line + {READ_WINDOW - 1}).",
            ),
        ] = None,
    ) -> Lines:
        """Read a document's lines with their numbers (the numbers citations use), e.g. to
        check a citation in context. Only indexed documents and files of the corpus
        folder; `note` says how to read on when the document continues."""
        return await tools.read_lines(path, start_line, end_line)

    @server.tool(annotations=READ_ONLY, structured_output=True)
    @guarded
    async def list_documents(
        prefix: Annotated[
            Any, _schema(ListRequest, "prefix", "Only paths starting with this.")
        ] = None,
        offset: Annotated[
            Any, _schema(ListRequest, "offset", "Skip this many (from next_offset).")
        ] = 0,
    ) -> DocumentPage:
        """The documents the index holds (path, size, chunks, when ingested), 100 a call;
        `next_offset` is set when there are more."""
        return await tools.list_documents(prefix, offset)

    @server.tool(annotations=READ_ONLY, structured_output=True)
    @guarded
    async def index_status() -> Readiness:
        """Whether rag can answer: the index (open, documents, chunks, version) and the LLM
        backend that writes answers (extractive: sentences quoted from the documents)."""
        return await tools.index_status()

    @server.resource(
        DOCUMENT_URI,
        name="document",
        title="A document, lines numbered",
        description="A document's lines, numbered as citations count them (path as "
        "citations name it).",
        mime_type="text/plain",
    )
    async def document(path: str) -> str:
        try:
            return await tools.document_text(path)
        except (PathNotFoundError, DocumentNotFoundError) as exc:
            raise ResourceNotFoundError(f"{exc.message} ({_hint(exc.hint)})") from None
        except RagError as exc:
            raise ResourceError(f"{exc.message} ({_hint(exc.hint)})") from None

    @server.prompt(
        name="answer_from_documents",
        title="Answer from my documents",
        description="Answer a question only from the documents, citing file and line.",
    )
    def answer_from_documents(question: str) -> str:
        return PROMPT.format(question=question)

    return server
