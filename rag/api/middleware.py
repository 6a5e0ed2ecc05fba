"""Pure ASGI middleware: request metrics, the error boundary, the Host check, the API key and
the body limit.

Order, outermost first: metrics (sees every response, refusals included) -> error boundary
-> trusted Host -> CORS (if configured) -> API key -> body limit -> the routes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote_plus

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.adapters.faults import translate
from rag.api.errors import error_response, shaped
from rag.api.metrics import Metrics
from rag.errors import (
    PayloadTooLargeError,
    RagError,
    RequestTimeoutError,
    UnauthorizedError,
    UntrustedHostError,
)

PUBLIC_PATHS = frozenset(
    {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/"}
)
PUBLIC_PREFIXES = ("/static/",)  # the web page's own files: no data, and it asks for the key


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(exc: RagError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(exc, scope.get("path", ""))(scope, receive, send)


def template_pattern(template: str) -> re.Pattern[str]:
    """``/v1/documents/{path}`` -> a regex; a parameter at the end may span several segments."""
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(
        (".+" if i == len(parts) - 2 and not parts[-1] else "[^/]+")
        if part.startswith("{")
        else re.escape(part)
        for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


class MetricsMiddleware:
    """Counts and times every request by its route template (not its raw path), refusals
    by the middleware (401, 413...) included."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: Callable[[], list[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self._templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def _route(self, path: str) -> str:
        if self._patterns is None:
            self._patterns = [(template_pattern(t), t) for t in self._templates()]
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        scope.setdefault("state", {})["started"] = started
        route = self._route(scope["path"])
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"]
            self.metrics.requests.inc(method, route, str(status))
            self.metrics.latency.observe(time.monotonic() - started, method, route)


log = logging.getLogger(__name__)


class ErrorBoundary:
    """Anything a route raises that no handler took becomes a JSON answer here: a full disk
    507, a damaged index 503, anything else 500 (logged with its traceback).

    Starlette's own last-resort handler answers too, but then re-raises, and uvicorn closes
    a connection whose handler raised: the client's next request on it was reset.  Here the
    error ends with the answer, so a keep-alive connection stays usable.  An error after the
    answer began cannot be answered: it is raised as before.
    """

    def __init__(self, app: ASGIApp, index_dir: Path | None = None) -> None:
        self.app = app
        self.index_dir = index_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            path = scope.get("path", "")
            known = translate(exc, self.index_dir)
            if known is None:
                log.error("unhandled error: %s", exc.__class__.__name__, exc_info=exc)
                response = shaped(
                    path, 500, "internal_error", "the server failed to answer", "see the server log"
                )
            else:
                log.warning("%s: %s (%s)", path, known.message, known.hint)
                response = error_response(known, path)
            await response(scope, receive, send)


_HOST_HEADER = re.compile(
    r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?))(?::\d{1,5})?"
    r"|(?P<bare>[0-9a-f]*:[0-9a-f]*:[0-9a-f:.]*)"  # an IPv6 address without brackets or port
)


_PARAM = re.compile(r"((?:^|[?&;])([^=&;#\s\"?]+)=)([^&;#\s\"]*)")
_SECRET_NAME = re.compile(
    r"api[_-]?key|apikey|key|token|access[_-]?token|auth|password", re.IGNORECASE
)


def _secret_value(match: re.Match[str]) -> str:
    name = unquote_plus(unquote_plus(match.group(2))).strip()  # api%5Fkey, api%255Fkey
    return match.group(1) + "***" if _SECRET_NAME.fullmatch(name) else match.group(0)


def redact_query(target: str) -> str:
    """A request target with the values of secret-looking query parameters replaced by
    ``***`` (``/v1/ask?api_key=s3cret`` -> ``/v1/ask?api_key=***``), whatever the name's
    percent-encoding (``api%5Fkey``, ``%61pi_key``)."""
    return _PARAM.sub(_secret_value, target) if "=" in target else target


class RedactSecrets(logging.Filter):
    """For the access log: a key sent in the query string (``?api_key=``) is never printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


REDACT_SECRETS = RedactSecrets()


def host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8000`` -> ``::1``), lower-cased; "" (matches
    no trusted host) unless the whole header is a host name or address and a port:
    ``127.0.0.1:8104@evil.example`` is refused, not read as 127.0.0.1."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    if match is None:
        return ""
    return match.group("v6") or match.group("name") or match.group("bare") or ""


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.strip().lower().strip("[]")
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class TrustedHostMiddleware:
    """Answers only requests whose Host header names this server (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = list(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.hosts:
            host = host_of(_header(scope, b"host") or "")
            if not host_allowed(host, self.hosts):
                exc = UntrustedHostError(
                    "the Host header does not name this server",
                    "call it by a name in RAG_TRUSTED_HOSTS (default 127.0.0.1, localhost)",
                )
                await _refuse(exc, scope, receive, send)
                return
        await self.app(scope, receive, send)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class ApiKeyMiddleware:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` on every route but the public ones.

    Digests are compared with ``hmac.compare_digest``: constant time, whatever the length.
    """

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self._key = _digest(key)

    def given(self, scope: Scope) -> str | None:
        key = _header(scope, b"x-api-key")
        if key is not None:
            return key.strip()
        auth = _header(scope, b"authorization")
        if auth is not None:
            scheme, _, credentials = auth.strip().partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_public(scope["path"]):
            given = self.given(scope)
            if given is None or not hmac.compare_digest(_digest(given), self._key):
                exc = UnauthorizedError(
                    "missing or wrong API key" if given is not None else "an API key is required",
                    "send Authorization: Bearer KEY or X-API-Key: KEY (the server's RAG_API_KEY)",
                )
                await _refuse(exc, scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Reads the whole body (at most ``max_bytes``, within ``timeout`` s) before the route.

    A declared Content-Length over the limit is refused before reading; a chunked body is
    counted as it arrives and refused the moment it passes the limit.  The routes then see
    the buffered body; later ``receive`` calls reach the server (disconnect detection).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body is larger than {self.max_bytes / 2**20:g} MiB",
            "send less per request (several uploads, fewer files), or raise RAG_MAX_BODY_MB",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        chunked = "chunked" in (_header(scope, b"transfer-encoding") or "").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)
            return
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            await _refuse(self._too_large(), scope, receive, send)
            return
        parts: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_bytes:
                        await _refuse(self._too_large(), scope, receive, send)
                        return
                    parts.append(body)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            exc = RequestTimeoutError(
                f"the request body did not arrive within {self.timeout:g} s",
                "send it faster, or raise RAG_REQUEST_TIMEOUT",
            )
            await _refuse(exc, scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
