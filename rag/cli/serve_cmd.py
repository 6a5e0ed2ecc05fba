"""`rag serve`: the HTTP API under uvicorn, one process or several workers over a Chroma server."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from rag.cli.options import BackendOpt, IndexOpt, cli_settings, setup_logging


def _serve_announcing(config: Any, page: str) -> None:
    """Run uvicorn; once it listens, the last line of its start says where the page is."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # before any request is served (and logged)
                typer.echo(f"\nopen {page} in a browser to ask your documents", err=True)

    AnnouncingServer(config).run()


def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default 1). More than one needs a Chroma server "
            "(RAG_CHROMA_URL); see docs/deploy.md."
        ),
    ] = None,
    backend: BackendOpt = None,
    index: IndexOpt = None,
) -> None:
    """Serve the HTTP API."""
    setup_logging(True)
    overrides = {"host": host, "port": port, "workers": workers, "llm_backend": backend,
                 "index_dir": index}  # fmt: skip
    settings, _ = cli_settings(**overrides)
    import uvicorn

    from rag.api.app import create_app

    if settings.workers > 1 and not settings.chroma_url:
        from rag.errors import ConfigError

        raise ConfigError(
            f"{settings.workers} workers cannot share the embedded Chroma index in "
            f"{settings.index_dir}: it allows one process",
            "use a Chroma server: start one with `chroma run --path data/chroma-server --port "
            "8001`, set RAG_CHROMA_URL=http://127.0.0.1:8001 and keep the index folder on a "
            "volume every worker sees (`make run-server`; docs/deploy.md); or serve with "
            "--workers 1",
        )
    if not settings.chroma_url:  # one process per embedded index: fail here, clearly
        from rag.adapters.lock import IndexLock

        IndexLock(settings.index_dir, "rag serve", settings.lock_wait).acquire()
    url = f"http://{settings.host}:{settings.port}"
    example = json.dumps({"question": "When did Putin last visit North Korea?"})
    if settings.workers > 1:
        api: Any = None  # each worker process builds its own app from RAG_* variables
    else:
        api = create_app(settings)
    typer.echo(f"rag is serving on {url}  (the page: {url}/  API docs: {url}/docs)", err=True)
    auth = ' -H "Authorization: Bearer $RAG_API_KEY"' if settings.api_key else ""
    typer.echo(
        f"try:  curl -s {url}/v1/ask -H 'Content-Type: application/json'{auth} -d '{example}'",
        err=True,
    )
    if api is not None:
        config = uvicorn.Config(api, host=settings.host, port=settings.port, log_level="info")
        _serve_announcing(config, f"{url}/")
        return
    # Worker processes read their settings from the environment: pass the flags on.
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"RAG_{name.upper()}"] = str(value)
    uvicorn.run(
        "rag.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
    )
