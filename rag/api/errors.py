"""One place where exceptions become HTTP responses: JSON {"error": {code, message, hint}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    ConfigError,
    IndexMismatchError,
    IndexMissingError,
    InputError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelNotFoundError,
    RagError,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[RagError], int]] = [
    (InputError, 400),
    (IndexMismatchError, 409),
    (IndexMissingError, 503),
    (ModelNotFoundError, 503),
    (LLMUnavailableError, 503),
    (LLMTimeoutError, 504),
    (ConfigError, 500),
]


def status_for(exc: RagError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 502 if exc.code.startswith("llm") else 500


def error_body(code: str, message: str, hint: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "hint": hint}}


def install(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(_: Request, exc: RagError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.hint), status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        return JSONResponse(
            error_body("validation_error", problems, "see /docs for the request schema"), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(f"http_{exc.status_code}", str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", "the server failed to answer", "see the server log"),
            500,
        )
