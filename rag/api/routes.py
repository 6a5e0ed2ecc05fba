"""Routes: validate, call a service, return its data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from rag.api.deps import AnswerServiceDep, RuntimeDep
from rag.config import Backend
from rag.models import Answer

router = APIRouter()


class AskRequest(BaseModel):
    question: Annotated[str, Field(min_length=1, max_length=2000)]
    top_k: Annotated[int | None, Field(ge=1, le=100)] = None
    backend: Backend | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [{"question": "When did Putin last visit North Korea?", "top_k": 5}]
        }
    }


class Health(BaseModel):
    status: str
    backend: str
    backend_reason: str
    model: str
    chunks: int


@router.post("/ask", response_model=Answer, summary="Answer a question with cited lines")
async def ask(body: AskRequest, service: AnswerServiceDep) -> Answer:
    return await run_in_threadpool(service.ask, body.question, body.top_k, body.backend)


@router.get("/health", response_model=Health, summary="Is the service up, and how it answers")
async def health(runtime: RuntimeDep) -> Health:
    choice = runtime.default_backend
    return Health(
        status="ok",
        backend=choice.backend,
        backend_reason=choice.reason,
        model=choice.model,
        chunks=runtime.store.count(),
    )
