"""The MCP server over streamable HTTP at ``/mcp`` of the API's app (`rag serve`).

The route sits behind the app's own middleware: the Host check, the API key (Bearer or
X-API-Key, as every route but the public ones) and the body limit; so the SDK's own
DNS-rebinding check is off (the app's Host check does that job, with RAG_TRUSTED_HOSTS).
Its tools use the app's Services: the one Runtime, loaded once, shared by every session and
by the HTTP routes.  With several worker processes (`rag serve --workers N`) a session's
requests may reach different workers, so the server is then stateless (every request stands
alone); with one it keeps sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings

from rag.api.deps import Services
from rag.mcp.server import build_server
from rag.mcp.tools import Tools

MCP_PATH = "/mcp"


def mount_mcp(app: FastAPI, services: Services) -> Callable[[], AbstractAsyncContextManager[None]]:
    """Add the ``/mcp`` route to ``app``; returns the session manager's context (enter it
    in the app's lifespan: it runs the sessions and ends them at shutdown)."""
    settings = services.runtime.settings
    server = build_server(Tools(services))
    sub = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=int(settings.max_body_mb * 2**20),
        stateless_http=settings.workers > 1,
        host=settings.host,
    )
    app.router.routes.extend(sub.routes)
    return server.session_manager.run
