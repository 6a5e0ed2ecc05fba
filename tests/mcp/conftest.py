"""The MCP tests' one server and index: `rag serve` (a subprocess on 127.0.0.1, extractive
backend, an API key) over a copy of data/corpus, ingested once through the API, and a long
document written into the corpus afterwards (not indexed).  Every `rag mcp` of these tests
reads that index beside the server, as an agent's would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_support import rag_serve, wait_job
from tests.conftest import CORPUS

KEY = "mcp-test-key-3b9d"
LONG = "long.txt"  # not indexed
SHORT_LINES = 250  # then long lines: read_lines' window first, then its output limit


def long_document() -> str:
    short = [f"Ledger line {n}: the harbour office counted crates." for n in range(1, 251)]
    long = [f"Ledger line {n}: " + "crates and barrels and nets " * 11 for n in range(251, 601)]
    return "\n".join(short + long) + "\n"


@dataclass
class Served:
    url: str
    env: dict[str, str]  # for `rag mcp`: the same index and corpus (no key: stdio has none)
    corpus: Path


@pytest.fixture(scope="session")
def served(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("mcp")
    corpus = home / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = {**cli_env, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(home / "index")}
    with rag_serve({**env, "RAG_API_KEY": KEY}, home / "server.log") as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        accepted = client.post("/v1/ingest", json={"paths": ["."]})
        assert accepted.status_code == 202, accepted.text
        assert wait_job(client, accepted.json()["job"]["id"], timeout=300)["state"] == "succeeded"
        # a file of the corpus the index does not hold (read_lines reads it all the same)
        (corpus / LONG).write_text(long_document())
        yield Served(url, env, corpus)
