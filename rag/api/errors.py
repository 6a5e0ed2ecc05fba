"""One place where exceptions become HTTP responses: JSON {"error": {code, message, hint}}.

Never a stack trace, never the request body or a secret: validation errors name the field
and the rule, not the value.  Overload errors carry ``Retry-After``.  Routes of the OpenAI
protocol (``OPENAI_PREFIXES``) get the same status codes in OpenAI's shape:
{"error": {message, type, code, param, hint}}.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.adapters.faults import translate
from rag.errors import (
    ConfigError,
    DeadlineExceededError,
    DiskFullError,
    DocumentNotFoundError,
    FeedbackNotFoundError,
    IndexBusyError,
    IndexDamagedError,
    IndexMismatchError,
    IndexMissingError,
    IndexStateError,
    InputError,
    JobNotFoundError,
    JobQueueFullError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelNotFoundError,
    PathNotAllowedError,
    PathNotFoundError,
    PayloadTooLargeError,
    RagError,
    RequestTimeoutError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedMediaTypeError,
    UntrustedHostError,
    UploadTooLargeError,
)

log = logging.getLogger(__name__)


# -- the HTTP status of each error (the first class that matches wins; the errors are in rag.errors)
STATUS: list[tuple[type[RagError], int]] = [
    (UnauthorizedError, 401),
    (PathNotAllowedError, 403),
    (DocumentNotFoundError, 404),
    (JobNotFoundError, 404),
    (FeedbackNotFoundError, 404),
    (UnknownModelError, 404),
    (PathNotFoundError, 404),
    (RequestTimeoutError, 408),
    (IndexMismatchError, 409),
    (PayloadTooLargeError, 413),
    (UploadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (JobQueueFullError, 429),
    (UntrustedHostError, 400),
    (InputError, 400),
    (IndexMissingError, 503),
    (IndexBusyError, 503),
    (IndexDamagedError, 503),
    (IndexStateError, 503),
    (ModelNotFoundError, 503),
    (LLMUnavailableError, 503),
    (LLMTimeoutError, 504),
    (DeadlineExceededError, 504),
    (DiskFullError, 507),
    (ConfigError, 500),
]


def status_for(exc: RagError) -> int:
    explicit = getattr(exc, "status", None)
    if isinstance(explicit, int):
        return explicit
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 502 if exc.code.startswith("llm") else 500


def error_body(code: str, message: str, hint: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "hint": hint}}


# -- the OpenAI protocol's shape ----------------------------------------------------------
OPENAI_PREFIXES = ("/v1/chat/", "/v1/models")
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def openai_body(status: int, code: str, message: str, hint: str = "") -> dict[str, Any]:
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": None, "hint": hint}}


def openai_error_data(exc: BaseException) -> dict[str, Any]:
    """The OpenAI-shaped error of a failure inside a stream (no status line to set)."""
    exc = translate(exc) or exc
    if isinstance(exc, RagError):
        return openai_body(status_for(exc), exc.code, exc.message, exc.hint)
    log.error("answer failed: %s", exc.__class__.__name__, exc_info=exc)
    return openai_body(500, "internal_error", "the server failed to answer", "see the server log")


def shaped(
    path: str, status: int, code: str, message: str, hint: str = "", **kwargs: Any
) -> JSONResponse:
    """A JSON error response in the shape the route's protocol expects."""
    if is_openai(path):
        body: dict[str, Any] = openai_body(status, code, message, hint)
    else:
        body = error_body(code, message, hint)
    return JSONResponse(body, status, **kwargs)


def error_response(exc: RagError, path: str = "") -> JSONResponse:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(max(1, retry_after))
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="rag"'
    return shaped(path, status_for(exc), exc.code, exc.message, exc.hint, headers=headers or None)


def _where(loc: Any) -> str:
    parts = [str(p)[:40] for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_response(exc: RequestValidationError, path: str = "") -> JSONResponse:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return shaped(
            path,
            400,
            "bad_request",
            "the request body is not valid JSON",
            "send a JSON object with Content-Type: application/json",
        )
    problems = "; ".join(f"{_where(err['loc'])}: {err['msg']}" for err in errors[:10])
    return shaped(path, 422, "validation_error", problems, "see /docs for the request schema")


def install(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return shaped(
            request.url.path,
            exc.status_code,
            f"http_{exc.status_code}",
            str(exc.detail),
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", exc.__class__.__name__, exc_info=exc)
        return shaped(
            request.url.path,
            500,
            "internal_error",
            "the server failed to answer",
            "see the server log",
        )


# -- documentation: the error responses each route may give -------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: e.g. llm_unavailable.")
    message: str = Field(description="What went wrong, in one line.")
    hint: str = Field(description="How to fix it (may be empty).")


class ErrorBody(BaseModel):
    error: ErrorDetail


_EXAMPLES: dict[int, tuple[str, str, str, str]] = {
    400: ("Bad request", "bad_request", "the request body is not valid JSON", "send JSON"),
    401: (
        "Missing or wrong API key",
        "unauthorized",
        "missing or wrong API key",
        "send Authorization: Bearer KEY or X-API-Key: KEY",
    ),
    403: (
        "A path outside the allowed roots",
        "path_not_allowed",
        "'/etc/passwd' is outside the folders this server may read",
        "name a file or folder under the corpus folder",
    ),
    404: (
        "Unknown document, job or path",
        "document_not_found",
        'the index holds no document "notes/x.txt"',
        "GET /v1/documents lists what it holds",
    ),
    408: ("The body arrived too slowly", "request_timeout", "the body took too long", ""),
    409: (
        "The index was built with another embedding model",
        "index_mismatch",
        "the index was built with embedding model 'other-model'",
        "rebuild it with `rag ingest --rebuild`",
    ),
    413: (
        "Body, upload or file too large",
        "payload_too_large",
        "the request body is larger than 10 MiB",
        "send less, or raise RAG_MAX_BODY_MB",
    ),
    415: (
        "Unsupported content type",
        "unsupported_media_type",
        "send application/json or multipart/form-data",
        "",
    ),
    422: (
        "Invalid request (the value itself is never echoed)",
        "validation_error",
        "top_k: Input should be greater than or equal to 1",
        "see /docs for the request schema",
    ),
    429: (
        "Overloaded: refused at once (see Retry-After)",
        "overloaded",
        "2 answers are being generated and 8 questions wait",
        "retry after the number of seconds in Retry-After",
    ),
    500: ("Server error", "internal_error", "the server failed to answer", "see the server log"),
    503: (
        "LLM or index unavailable, or overloaded (see Retry-After)",
        "llm_unavailable",
        "Ollama at http://127.0.0.1:11434 does not have the model 'llama3.2:3b'",
        "run `ollama pull llama3.2:3b`",
    ),
    504: (
        "The LLM timed out, or the request deadline passed",
        "llm_timeout",
        "Ollama at http://127.0.0.1:11434 sent no token for 120 s",
        "raise RAG_FIRST_TOKEN_TIMEOUT",
    ),
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (overload only).",
        "schema": {"type": "integer"},
    }
}
COMMON = (400, 401, 408, 413, 415, 422, 500)


class OpenAIErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, in one line.")
    type: str = Field(description="OpenAI's error type: invalid_request_error, server_error...")
    code: str = Field(description="rag's stable code: e.g. llm_unavailable.")
    param: str | None = None
    hint: str = Field(description="How to fix it (may be empty).")


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


def openai_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` of the OpenAI-compatible routes: the same statuses, OpenAI's shape."""
    out = responses(*statuses)
    for status, entry in out.items():
        _, code, message, hint = _EXAMPLES[int(status)]
        entry["model"] = OpenAIErrorBody
        example = openai_body(int(status), code, message, hint)
        entry["content"]["application/json"] = {"example": example}
    return out


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (plus the ones every route may give)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses) | set(COMMON)):
        description, code, message, hint = _EXAMPLES[status]
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": description,
            "content": {"application/json": {"example": error_body(code, message, hint)}},
        }
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        if status == 400:  # a request the HTTP server cannot parse (e.g. a 70 KB URL)
            entry["content"]["text/plain"] = {
                "schema": {"type": "string"},
                "example": "Invalid HTTP request received.",
            }
            entry["description"] += "; plain text when the HTTP server cannot parse the request"
        out[status] = entry
    return out
