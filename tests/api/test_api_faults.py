"""Faults behind the API: a damaged index is a 503 naming the damage (readyz too), anything
unexpected a JSON 500, and neither drops the client's keep-alive connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from rag.api.app import create_app
from tests.api_support import LiveServer, error_of
from tests.conftest import PUTIN_2000, make_runtime
from tests.indexing.test_damage import zero_page


def _local_port(response: httpx.Response) -> int:
    """The client's port of the connection the response came on (same port: same one)."""
    sock = response.extensions["network_stream"].get_extra_info("socket")
    return int(sock.getsockname()[1])


def test_a_damaged_index_is_503_naming_it_on_one_kept_connection(
    tmp_path: Path, embedder: Any
) -> None:
    builder = make_runtime(tmp_path, embedder, llm_backend="extractive")
    builder.ingest_service().ingest()
    gen = builder.manifest.active()
    assert gen is not None
    builder.stores(gen)[1].close()
    zero_page(tmp_path / "index" / gen.lexical, 135168)

    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive")
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        client = httpx.Client(base_url=live.url, timeout=30)
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        error = ready.json()["index"]["error"]
        assert error["code"] == "index_damaged" and error["message"].startswith("damaged: ")
        assert gen.lexical in error["message"] and "rag ingest --rebuild" in error["hint"]
        ports = set()
        for _ in range(6):
            r = client.post("/v1/ask", json={"question": PUTIN_2000})
            assert r.status_code == 503, r.text
            assert error_of(r)["code"] == "index_damaged"
            ports.add(_local_port(r))
        assert len(ports) == 1  # never dropped


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays(
    tmp_path: Path, embedder: Any
) -> None:
    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive")
    app: FastAPI = create_app(runtime.settings, runtime)

    @app.post("/v1/boom")
    async def boom() -> None:  # what no handler knows: a bug
        raise RuntimeError("a bug")

    with LiveServer(app) as live:
        client = httpx.Client(base_url=live.url, timeout=30)
        ports = set()
        for i in range(6):
            r = client.post("/v1/boom", json={"n": i})
            assert r.status_code == 500
            error = error_of(r)
            assert error["code"] == "internal_error" and "a bug" not in r.text
            ports.add(_local_port(r))
        ok = client.get("/healthz")
        ports.add(_local_port(ok))
        assert ok.status_code == 200 and len(ports) == 1
