"""`rag mcp`: the MCP server over stdio, for agents that start a command (Claude Desktop,
Claude Code, Cursor...).

One process per client session, reading the index as `rag chat` does (no writer lock: it
runs beside `rag serve` or `rag ingest`, and notices what they write).  The protocol owns
stdout; logs go to stderr.  The models load on a thread once the transport is up, so the
client's handshake is answered at once.
"""

from __future__ import annotations

import anyio

from rag.api.app import build_services
from rag.api.metrics import Metrics
from rag.config import Settings
from rag.mcp.server import build_server
from rag.mcp.tools import Tools, Warmup
from rag.runtime import Runtime


def serve_stdio(settings: Settings) -> None:
    """Serve until the client closes stdin."""
    runtime = Runtime(settings)
    services = build_services(settings, runtime, Metrics())
    server = build_server(Tools(services, Warmup(services)))
    try:
        anyio.run(server.run_stdio_async)
    finally:
        services.asker.close()
        services.jobs.close()
