"""The app factory: ``create_app(settings)``.  Heavy parts load in the lifespan, not at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from rag import __version__
from rag.api import errors
from rag.api.routes import router
from rag.config import Settings
from rag.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Fail at start-up, not at the first question, when the index is missing or mismatched.
        await run_in_threadpool(lambda: runtime.answer_service)
        choice = runtime.default_backend
        log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
        yield

    app = FastAPI(
        title="rag",
        version=__version__,
        description="Question answering over your own files; every answer cites file and line.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(router)
    return app
