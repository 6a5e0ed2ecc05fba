"""Operations: /healthz (alive), /readyz (index open, which LLM, does it answer), /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from rag.api.deps import RuntimeDep, ServicesDep
from rag.api.errors import responses
from rag.api.metrics import CONTENT_TYPE
from rag.api.readiness import readiness
from rag.api.schemas import Health, LegacyHealth, Readiness

router = APIRouter(tags=["operations"])
METRICS_EXAMPLE = (
    "# HELP rag_http_requests_total HTTP requests by method, route and status.\n"
    "# TYPE rag_http_requests_total counter\n"
    'rag_http_requests_total{method="POST",route="/v1/ask",status="200"} 3\n'
)


@router.get(
    "/healthz",
    response_model=Health,
    responses=responses(),
    summary="The process is alive (no API key needed)",
)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        **responses(),
        503: {"model": Readiness, "description": "Not ready: the index is not open."},
    },
    summary="Ready to answer: the index is open; which LLM backend serves, and does it answer",
)
async def readyz(services: ServicesDep) -> JSONResponse:
    ready = await run_in_threadpool(readiness, services)
    status = 200 if ready.status == "ready" else 503
    return JSONResponse(ready.model_dump(mode="json"), status)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        **responses(),
        200: {"content": {"text/plain": {"example": METRICS_EXAMPLE}}},
    },
    summary="Prometheus metrics (text format)",
)
async def metrics(services: ServicesDep) -> PlainTextResponse:
    text = await run_in_threadpool(services.metrics.render)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


@router.get("/health", response_model=LegacyHealth, include_in_schema=False)
async def health(runtime: RuntimeDep) -> LegacyHealth:
    """The pre-/v1 health route: backend and chunk count."""

    def read() -> LegacyHealth:
        choice = runtime.default_backend
        return LegacyHealth(
            status="ok",
            backend=choice.backend,
            backend_reason=choice.reason,
            model=choice.model,
            chunks=runtime.store.count(),
        )

    return await run_in_threadpool(read)
