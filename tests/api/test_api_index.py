"""The index behind the API: built with another model (409), one writer at a time (429)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from rag.adapters.store import IndexInfo
from rag.api.app import create_app
from tests.api_support import LiveServer, error_of, wait_job
from tests.conftest import PUTIN_2000, make_runtime


def test_index_built_with_another_embedding_model_is_409_until_ingest_rebuilds_it(
    tmp_path: Path, embedder: Any
) -> None:
    builder = make_runtime(tmp_path, embedder, llm_backend="extractive")
    real = builder.index_info
    other = IndexInfo("acme/other-embedder", real.embedding_dim, real.chunker)
    builder.__dict__["index_info"] = other
    builder.ingest_service().ingest()  # the index on disk says: built with another model

    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive")
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        client = httpx.Client(base_url=live.url, timeout=30)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["index"]["error"]["code"] == "index_mismatch"
        for route, body in [
            ("/v1/ask", {"question": PUTIN_2000}),
            ("/v1/search", {"query": "Putin"}),
        ]:
            r = client.post(route, json=body)
            assert r.status_code == 409, (route, r.text)
            error = error_of(r)
            assert error["code"] == "index_mismatch" and "acme/other-embedder" in error["message"]
            assert "rag ingest" in error["hint"]
        # an ingest builds an index with the configured model beside it, then switches
        job = client.post("/v1/ingest", json={"paths": ["."]})
        assert job.status_code == 202, job.text
        done = wait_job(client, job.json()["job"]["id"])
        assert done["state"] == "succeeded", done
        assert client.get("/readyz").status_code == 200
        answer = client.post("/v1/ask", json={"question": PUTIN_2000})
        assert answer.status_code == 200 and answer.json()["citations"]


def test_one_writer_at_a_time(tmp_path: Path, embedder: Any) -> None:
    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive", ingest_queue=0)
    runtime.ingest_service().ingest()
    corpus = runtime.settings.corpus_dir
    bulk = corpus / "bulk"
    bulk.mkdir()
    source = (corpus / "004_5e50463e41e8a191.txt").read_text(encoding="utf-8")
    for i in range(8):
        (bulk / f"copy_{i}.txt").write_text(f"Copy {i}\n{source}", encoding="utf-8")
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        client = httpx.Client(base_url=live.url, timeout=60)
        first = client.post("/v1/ingest", json={"paths": ["bulk"]})
        assert first.status_code == 202
        second = client.post("/v1/ingest", json={"paths": ["bulk"]})
        assert second.status_code == 429 and error_of(second)["code"] == "ingest_queue_full"
        assert int(second.headers["retry-after"]) >= 1

        deleted: dict[str, httpx.Response] = {}

        def delete() -> None:  # waits for the running job (the writer lock), then deletes
            deleted["r"] = client.delete("/v1/documents/000_2f75ad98d5781bb4.txt")

        worker = threading.Thread(target=delete)
        worker.start()
        job = wait_job(client, first.json()["job"]["id"])
        worker.join(60)
        assert job["state"] == "succeeded" and job["files"]["indexed"] == 8
        assert deleted["r"].status_code == 200, deleted["r"].text
        docs = client.get("/v1/documents").json()
        assert "000_2f75ad98d5781bb4.txt" not in {d["path"] for d in docs["documents"]}
        assert docs["chunks"] == job["chunks"]["total"] - deleted["r"].json()["chunks_deleted"]
        assert docs["chunks"] == client.get("/readyz").json()["index"]["chunks"]
        assert docs["chunks"] == runtime.lexical.count()  # the keyword index agrees
