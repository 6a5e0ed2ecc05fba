"""The app factory: ``create_app(settings)``.  Heavy parts load in the lifespan, not at import.

The server starts even without an index (``/readyz`` says so, ``POST /v1/ingest`` builds
one) or with one built by other settings (requests then answer 409).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from rag import __version__
from rag.adapters.faults import translate
from rag.api import errors
from rag.api.asking import Asker
from rag.api.deps import Services
from rag.api.documents import DocumentService
from rag.api.jobs.manager import JobManager
from rag.api.jobs.store import JobStore
from rag.api.limits import Gates
from rag.api.metrics import Metrics
from rag.api.middleware import (
    PUBLIC_PATHS,
    REDACT_SECRETS,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    ErrorBoundary,
    MetricsMiddleware,
    TrustedHostMiddleware,
)
from rag.api.paths import PathPolicy
from rag.api.probe import LLMProbe
from rag.api.routes import router
from rag.api.routes.page import PAGE_ROUTES
from rag.config import Settings
from rag.feedback.marking import FeedbackService
from rag.mcp.http import MCP_PATH, mount_mcp
from rag.runtime import Runtime

log = logging.getLogger(__name__)
LEGACY_ROUTES = ["/ask", "/health"]  # kept from before /v1, not in the schema

DESCRIPTION = """Question answering over your own files; every answer cites file and line.

* `POST /v1/ask` answers (JSON, or Server-Sent Events with `stream: true`);
  `POST /v1/search` retrieves passages without any LLM.
* `POST /v1/ingest` starts an ingest job (paths inside the allowed roots, or uploaded files);
  `GET /v1/ingest/{job}` reports its progress. Jobs run one at a time; a few may wait, more
  are refused with 429.
* `GET /v1/documents`, `DELETE /v1/documents/{path}`; `GET /v1/lines` (a document's
  numbered lines around a citation).
* `POST /v1/feedback` marks an answer (right, wrong, "the documents do not say this",
  the right lines); `GET /v1/feedback` lists the marks; `rag feedback export` turns them
  into golden rows the regression gate guards.
* `GET /` is a web page over this API (ask, read citations, manage documents).
* `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus).
* `/mcp`: the same tools for agents over the Model Context Protocol (streamable HTTP: `ask`,
  `search`, `read_lines`, `list_documents`, `index_status`); `rag mcp` serves them over stdio.
* OpenAI-compatible: `POST /v1/chat/completions` (the last user message is the question;
  citations in the extra field `rag`) and `GET /v1/models`; errors there in OpenAI's shape.

Errors are `{"error": {"code", "message", "hint"}}`. When the server has an API key, send it
as `Authorization: Bearer KEY` or `X-API-Key: KEY` (all routes but /healthz and the docs).
"""


def _trusted_hosts(settings: Settings) -> list[str]:
    hosts = list(settings.trusted_hosts)
    if settings.host not in ("0.0.0.0", "::", "") and settings.host not in hosts:
        hosts.append(settings.host)
    return hosts


def _middleware(
    settings: Settings, metrics: Metrics, templates: Callable[[], list[str]]
) -> list[Middleware]:
    stack = [
        Middleware(MetricsMiddleware, metrics=metrics, templates=templates),
        Middleware(ErrorBoundary, index_dir=settings.index_dir),
        Middleware(TrustedHostMiddleware, hosts=_trusted_hosts(settings)),
    ]
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
                max_age=600,
            )
        )
    if settings.api_key is not None and settings.api_key.get_secret_value():
        stack.append(Middleware(ApiKeyMiddleware, key=settings.api_key.get_secret_value()))
    stack.append(
        Middleware(
            BodyLimitMiddleware,
            max_bytes=int(settings.max_body_mb * 2**20),
            timeout=settings.request_timeout,
        )
    )
    return stack


def build_services(settings: Settings, runtime: Runtime, metrics: Metrics) -> Services:
    policy = PathPolicy(settings)
    holder: dict[str, DocumentService] = {}
    # With a Chroma server several workers may share the index folder: job records go to a
    # table there (any worker answers a poll), and writes wait for the cross-process lock.
    shared = bool(settings.chroma_url)
    jobs = JobManager(
        ingest=lambda progress, paths: runtime.ingest_service(progress).ingest(paths),
        queue_limit=settings.ingest_queue,
        state=lambda: holder["documents"].state(),
        after_write=lambda: runtime.answer_service,
        store=JobStore(settings.index_dir) if shared else None,
        lock=lambda wait: runtime.writer_lock("rag serve (ingest)", timeout=wait),
    )
    documents = holder["documents"] = DocumentService(
        settings, runtime.ingest_service, jobs, policy
    )
    gates = Gates(settings.llm_concurrency, settings.llm_queue, settings.llm_queue_timeout, metrics)
    asker = Asker(gates, metrics, workers=settings.llm_concurrency + 7)
    metrics.add_gauge("rag_llm_in_flight", "Answers being generated by an LLM now.", gates.running)
    metrics.add_gauge("rag_ingest_jobs_queued", "Ingest jobs waiting.", jobs.queued)
    metrics.add_gauge("rag_index_chunks", "Chunks the index lists.", lambda: documents.state()[1])
    return Services(runtime, metrics, asker, jobs, documents, policy, LLMProbe(runtime))


def _customize_openapi(app: FastAPI, settings: Settings) -> None:
    """Put the settings' limits into /openapi.json, and declare the API key if there is one
    (so /docs and generated clients send it)."""
    original = app.openapi
    secured = settings.api_key is not None and bool(settings.api_key.get_secret_value())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            upload = schema["paths"]["/v1/ingest"]["post"]["requestBody"]["content"]
            files = upload["multipart/form-data"]["schema"]["properties"]["files"]
            files["maxItems"] = settings.max_upload_files
            if secured:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
                for path, operations in schema.get("paths", {}).items():
                    if path in PUBLIC_PATHS:
                        continue
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings)
    metrics = Metrics()
    for name in ("uvicorn.access", "uvicorn.error"):  # a key in a query string is not logged
        logging.getLogger(name).addFilter(REDACT_SECRETS)
    services = build_services(settings, runtime, metrics)
    feedback = FeedbackService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the model and open the index now, not at the first question; a missing or
        # mismatched index is reported by /readyz and by each request, not a crash.
        # Embedded Chroma allows one process per index folder: hold its writer lock while
        # serving (refused, naming the holder, if another process writes it), and repair what
        # an interrupted writer left before the first request.
        held = None
        if not settings.chroma_url:
            held = runtime.writer_lock("rag serve")
            held.acquire()
        try:
            for note in await run_in_threadpool(runtime.ingest_service().check):
                log.warning("%s", note)
        except Exception as exc:  # a damaged index, a full disk: served, and /readyz says so
            known = translate(exc, settings.index_dir)
            if known is None:
                raise
            log.warning("index check: %s (%s)", known.message, known.hint)
        try:
            await run_in_threadpool(lambda: runtime.answer_service)
            # (choosing "auto" probes Ollama: never on the event loop, and the probe has its
            # own short timeout, so a stalled server cannot hold the start-up)
            choice = await run_in_threadpool(lambda: runtime.default_backend)
            log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
        except Exception as exc:
            known = translate(exc, settings.index_dir)
            if known is None:
                raise
            log.warning("not ready: %s (%s)", known.message, known.hint)
        try:
            async with mcp_sessions():
                yield
        finally:
            services.asker.close()
            await run_in_threadpool(services.jobs.close)
            if services.jobs.store is not None:
                services.jobs.store.close()
            feedback.close()
            if held is not None:
                held.release()

    app = FastAPI(
        title="rag",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )

    def templates() -> list[str]:  # route templates, for the metrics' route label
        paths = sorted(app.openapi().get("paths", {}), key=len, reverse=True)
        return paths + LEGACY_ROUTES + PAGE_ROUTES + [MCP_PATH]

    for layer in reversed(_middleware(settings, metrics, templates)):  # first: outermost
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.state.services = services
    app.state.runtime = runtime
    app.state.feedback = feedback
    errors.install(app)
    app.include_router(router)
    mcp_sessions = mount_mcp(app, services)
    _customize_openapi(app, settings)
    return app


def app_from_env() -> FastAPI:
    """The app with settings from RAG_* variables and rag.toml: the factory each worker
    process of `rag serve --workers N` builds (``uvicorn --factory rag.api.app:app_from_env``
    does the same)."""
    from rag.config import load_settings

    if not logging.getLogger().handlers:  # a fresh worker process: log like `rag serve`
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return create_app(load_settings())
