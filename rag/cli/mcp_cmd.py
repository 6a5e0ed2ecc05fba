"""`rag mcp`: rag's tools for agents over the Model Context Protocol (stdio)."""

from __future__ import annotations

from typing import Annotated

import typer

from rag.cli.options import BackendOpt, CorpusOpt, IndexOpt, cli_settings, setup_logging


def mcp_command(
    backend: BackendOpt = None,
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log to stderr.")] = False,
) -> None:
    """Serve rag's tools (ask, search, read_lines, ...) to an MCP client over stdio.

    The client starts it (Claude Desktop, Claude Code, Cursor: see the README); stdout
    carries the protocol, logs go to stderr.  `rag serve` serves the same at /mcp over HTTP.
    """
    setup_logging(verbose)
    settings, _ = cli_settings(llm_backend=backend, index_dir=index, corpus_dir=corpus)
    from rag.mcp.stdio import serve_stdio

    serve_stdio(settings)
