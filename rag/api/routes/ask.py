"""POST /v1/ask (JSON or Server-Sent Events) and POST /v1/search (retrieval only, no LLM)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from rag.answering.answer import AnswerService
from rag.api.asking import (
    AskRun,
    Event,
    collect,
    first_event,
    in_thread,
    search_passages,
    sse_events,
)
from rag.api.deps import AnswerServiceDep, DeadlineDep, Services, ServicesDep, SettingsDep
from rag.api.errors import responses
from rag.api.schemas import ANSWER_EXAMPLE, SSE_EXAMPLE, AskRequest, SearchRequest, SearchResponse
from rag.models import Answer

router = APIRouter(tags=["answers"])

SSE_EVENT: dict[str, Any] = {  # one event (OpenAPI < 3.2: `schema` describes each event)
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["token", "citations", "done", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"type": "object"},
        },
    },
}
ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer (JSON), or with `stream` / `Accept: text/event-stream` a "
        "stream of Server-Sent Events: `token` (`{text}`: each sentence as the model writes it, "
        "once it passed the citation check, with its `[n]` markers; unverified sentences are "
        "never sent; the final text is in `done`), one `citations` (`{citations}`), one `done` "
        "(the whole answer object); or an `error` event (`{error: {code, message, hint}}`).",
        "content": {
            "application/json": {"example": ANSWER_EXAMPLE},
            "text/event-stream": {"schema": SSE_EVENT, "example": SSE_EXAMPLE},
        },
    },
    **responses(409, 429, 503, 504),
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def wants_stream(body: AskRequest, request: Request) -> bool:
    if body.stream is not None:
        return body.stream
    return "text/event-stream" in request.headers.get("accept", "").lower()


async def start_run(service: AnswerService, services: Services, body: AskRequest) -> AskRun:
    """Start answering ``body`` against the index version of now (/v1/ask and the OpenAI
    chat completions share it)."""
    version = await run_in_threadpool(services.documents.index_version)
    return await services.asker.start(service, body, version)


async def opening_event(run: AskRun, request: Request, deadline: float, timeout: float) -> Event:
    """A stream's first event; a failure before it is raised instead, so the client gets a
    plain JSON error with its real status rather than a 200 stream holding one error."""
    first = await first_event(run, request.receive, deadline, timeout)
    if first[0] == "error":
        run.close()
        raise first[1]
    return first


@router.post(
    "/v1/ask",
    response_model=Answer,
    responses=ASK_RESPONSES,
    summary="Answer a question; every claim cites file and line",
)
async def ask(
    body: AskRequest,
    request: Request,
    service: AnswerServiceDep,
    services: ServicesDep,
    settings: SettingsDep,
    deadline: DeadlineDep,
) -> Any:
    run = await start_run(service, services, body)
    timeout = settings.request_timeout
    if not wants_stream(body, request):
        return await collect(run, request.receive, deadline.at, timeout)
    first = await opening_event(run, request, deadline.at, timeout)
    return StreamingResponse(
        sse_events(run, first, deadline.at, timeout),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


router.add_api_route(  # the pre-/v1 route, kept for scripts that use it
    "/ask", ask, methods=["POST"], response_model=Answer, include_in_schema=False
)


@router.post(
    "/v1/search",
    response_model=SearchResponse,
    responses=responses(409, 503, 504),
    summary="Retrieve passages (no LLM: works while the model is down)",
)
async def search(
    body: SearchRequest,
    service: AnswerServiceDep,
    services: ServicesDep,
    settings: SettingsDep,
    deadline: DeadlineDep,
) -> SearchResponse:
    def retrieve() -> SearchResponse:
        return search_passages(service, services.metrics, services.documents.index_version, body)

    return await in_thread(deadline.at, settings.request_timeout, retrieve)
