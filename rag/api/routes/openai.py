"""The OpenAI-compatible routes: POST /v1/chat/completions (JSON or chunk stream) and
GET /v1/models; the protocol itself is in rag.api.openai_compat."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from rag.api.asking import collect, first_event
from rag.api.deps import AnswerServiceDep, DeadlineDep, ServicesDep, SettingsDep
from rag.api.errors import UnknownModelError, UnsupportedParameterError, openai_responses
from rag.api.openai_catalog import MODELS, Catalog, ModelCard, ModelList
from rag.api.openai_compat import (
    ACCEPTED,
    Completion,
    ask_request,
    backend_of,
    chunks,
    conversation,
    refused,
)
from rag.api.openai_schemas import (
    CHUNKS_EXAMPLE,
    COMPLETION_EXAMPLE,
    ChatCompletion,
    ChatCompletionRequest,
)
from rag.config import Settings

router = APIRouter(tags=["OpenAI-compatible"])
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CHUNK_EVENT: dict[str, Any] = {  # one event (OpenAPI < 3.2: `schema` describes each event)
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["message"]},
        "data": {"type": "string", "description": "a JSON chunk, a JSON error, or [DONE]"},
    },
}
CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `chat.completion` (JSON); with `stream: true`, Server-Sent Events: "
        "`data: {chat.completion.chunk}` events, the last one with `finish_reason: stop` "
        "and the `rag` field, then `data: [DONE]`; or one `data: {error}` event.",
        "model": ChatCompletion,
        "content": {
            "application/json": {"example": COMPLETION_EXAMPLE},
            "text/event-stream": {
                "schema": CHUNK_EVENT,
                "example": CHUNKS_EXAMPLE,
            },
        },
    },
    **openai_responses(404, 409, 429, 503, 504),
}


def catalog(request: Request, settings: Settings) -> Catalog:
    """The app's model catalog (made on first use)."""
    found: Catalog | None = getattr(request.app.state, "openai_catalog", None)
    if found is None:
        found = request.app.state.openai_catalog = Catalog(settings)
    return found


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses=CHAT_RESPONSES,
    summary="OpenAI-compatible chat: the last user message is the question",
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    service: AnswerServiceDep,
    services: ServicesDep,
    settings: SettingsDep,
    deadline: DeadlineDep,
) -> Any:
    problems = refused(body)
    if problems:
        raise UnsupportedParameterError(
            f"unsupported parameter(s): {'; '.join(problems)}", f"rag accepts: {ACCEPTED}"
        )
    backend = backend_of(body.model)
    turns, question = conversation(body.messages)
    timeout = settings.request_timeout
    version = await run_in_threadpool(services.documents.index_version)
    asked = ask_request(body, turns, question, backend)  # a follow-up is rewritten there
    run = await services.asker.start(service, asked, version)
    completion = Completion(body.model)
    if not body.stream:
        answer = await collect(run, request.receive, deadline.at, timeout)
        return JSONResponse(completion.response(answer))
    first = await first_event(run, request.receive, deadline.at, timeout)
    if first[0] == "error":  # failed before the first token: a JSON error, real status
        run.close()
        raise first[1]
    return StreamingResponse(
        chunks(completion, run, first, deadline.at, timeout),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=openai_responses(),
    summary="OpenAI-compatible: one model per backend that can answer now",
)
async def models(request: Request, settings: SettingsDep) -> ModelList:
    return await run_in_threadpool(catalog(request, settings).models)


@router.get(
    "/v1/models/{model}",
    response_model=ModelCard,
    responses=openai_responses(404),
    summary="OpenAI-compatible: one model, if its backend can answer now",
)
async def model(model: str, request: Request, settings: SettingsDep) -> ModelCard:
    listed = await run_in_threadpool(catalog(request, settings).models)
    for card in listed.data:
        if card.id == model:
            return card
    why = "unavailable now" if model in MODELS else "not served by rag"
    raise UnknownModelError(f"model {model!r} is {why}", "GET /v1/models lists the models")
