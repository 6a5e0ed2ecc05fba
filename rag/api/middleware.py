"""Pure ASGI middleware: request metrics, the Host check, the API key and the body limit.

Order, outermost first: metrics (sees every response, refusals included) -> trusted Host
-> CORS (if configured) -> API key -> body limit -> the routes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api.errors import (
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
    UntrustedHostError,
    error_response,
)
from rag.api.metrics import Metrics
from rag.errors import RagError

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


def host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8000`` -> ``::1``), lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


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
