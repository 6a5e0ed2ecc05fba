"""`rag serve` (a real uvicorn process on 127.0.0.1) driven by a real HTTP client.

The server starts without an index and is filled over HTTP; it has an API key, two allowed
roots (the corpus and a "shared" folder) and small body/upload limits so the limits are
cheap to hit.  Ollama is "down" (nothing listens at OLLAMA_HOST).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import (
    assert_citations_resolve,
    copy_corpus,
    error_of,
    rag_serve,
    sse_events,
    wait_job,
)
from tests.conftest import OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, sed_lines

KEY = "test-key-5b0f"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMIT = 2**20  # RAG_MAX_BODY_MB=1


class Server:
    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.corpus = home / "corpus"
        self.outside = home / "outside"
        self.client = httpx.Client(base_url=url, headers=AUTH, timeout=60)
        self.before: dict[str, Any] = {}
        self.first_job: dict[str, Any] = {}

    def documents(self) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get("/v1/documents").json()
        return body


def _prepare(home: Path) -> None:
    corpus = copy_corpus(home / "corpus")
    outside = home / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The launch code is 0000.\n")
    shared = home / "shared"
    shared.mkdir()
    (shared / "glossary.md").write_text("Juche is North Korea's official state ideology.\n")
    (corpus / "escape.txt").symlink_to(outside / "secret.txt")  # a link out of the roots
    (corpus / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))


@pytest.fixture(scope="module")
def server(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("api")
    _prepare(home)
    env = {
        **cli_env,
        "RAG_CORPUS_DIR": str(home / "corpus"),
        "RAG_INDEX_DIR": str(home / "index"),
        "RAG_API_KEY": KEY,
        "RAG_ALLOWED_ROOTS": f"{home / 'corpus'}{os.pathsep}{home / 'shared'}",
        "RAG_MAX_BODY_MB": "1",
        "RAG_MAX_UPLOAD_FILES": "3",
        "RAG_MAX_UPLOAD_FILE_MB": "0.25",
        "RAG_LLAMACPP_MODEL_PATH": str(home / "missing.gguf"),
    }
    log = home / "server.log"
    with rag_serve(env, log) as url:
        srv = Server(url, home)
        # Before any ingest: alive, not ready, questions answered 503 with a hint.
        srv.before["readyz"] = srv.client.get("/readyz")
        srv.before["ask"] = srv.client.post("/v1/ask", json={"question": PUTIN_2000})
        accepted = srv.client.post("/v1/ingest", json={"paths": ["."]})
        assert accepted.status_code == 202, accepted.text
        srv.before["accepted"] = accepted
        srv.first_job = wait_job(srv.client, accepted.json()["job"]["id"])
        yield srv
    assert KEY not in log.read_text()  # the API key is never logged


# -- happy paths -----------------------------------------------------------------------------
def test_not_ready_until_ingested(server: Server) -> None:
    readyz = server.before["readyz"]
    assert readyz.status_code == 503 and readyz.json()["index"]["opened"] is False
    assert readyz.json()["llm"]["backend"] == "extractive"
    ask = server.before["ask"]
    assert ask.status_code == 503 and error_of(ask)["code"] == "index_missing"
    ready = server.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["index"]["opened"] is True
    assert ready["llm"] == {**ready["llm"], "backend": "extractive", "answering": True}


def test_ingest_job_reports_progress_and_skips(server: Server) -> None:
    accepted = server.before["accepted"]
    assert accepted.headers["location"] == accepted.json()["status_url"]
    job = server.first_job
    assert job["state"] == "succeeded" and job["errors"] == []
    assert job["files"]["indexed"] == 5
    skipped = {s["path"]: s["reason"] for s in job["skipped"]}
    assert "escape.txt" in skipped and "outside the allowed roots" in skipped["escape.txt"]
    assert "unsupported format" in skipped["photo.png"]
    assert job["progress"]["embed"]["done"] == job["progress"]["embed"]["total"] > 0
    docs = server.documents()
    assert job["chunks"]["total"] == docs["chunks"] == sum(d["chunks"] for d in docs["documents"])
    assert job["index_version"] == docs["index_version"]
    assert "secret" not in str(docs)


def test_ask(server: Server) -> None:
    r = server.client.post("/v1/ask", json={"question": PUTIN_2000})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "2000" in body["answer"] and not body["abstained"]
    assert body["backend"] == "extractive" and body["model"]
    assert {(c["path"], c["start_line"]) for c in body["citations"]} & PUTIN_2000_LINES
    assert set(body["citations"][0]) >= {"path", "start_line", "end_line", "quote", "score"}
    assert body["index_version"] == server.documents()["index_version"]
    assert "prompt_version" in body and body["timings"]["total_ms"] > 0


def test_ask_unanswerable(server: Server) -> None:
    body = server.client.post("/v1/ask", json={"question": OFF_TOPIC}).json()
    assert body["abstained"] is True and body["citations"] == []


def test_ask_paths_restricts_documents(server: Server) -> None:
    r = server.client.post("/v1/ask", json={"question": PUTIN_2000, "paths": ["003_"]})
    body = r.json()
    assert body["citations"] and all(c["path"].startswith("003_") for c in body["citations"])
    assert all(s["path"].startswith("003_") for s in body["sources"])


@pytest.mark.parametrize("how", ["flag", "accept"])
def test_ask_streams_server_sent_events(server: Server, how: str) -> None:
    payload: dict[str, Any] = {"question": PUTIN_2000}
    headers = {"Accept": "text/event-stream"}
    if how == "flag":
        payload["stream"], headers = True, {}
    with server.client.stream("POST", "/v1/ask", json=payload, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r.iter_lines()))
    names = [e for e, _ in events]
    assert names == ["token", "citations", "done"]  # extractive: the answer as one token
    token, citations, done = (d for _, d in events)
    assert token["text"] == done["answer"] and "2000" in done["answer"]
    assert citations["citations"] == done["citations"] and done["citations"]
    plain = server.client.post("/v1/ask", json={"question": PUTIN_2000}).json()
    assert plain["answer"] == done["answer"] and plain["citations"] == done["citations"]


def test_search(server: Server) -> None:
    r = server.client.post("/v1/search", json={"query": "Putin visit North Korea 2000"})
    assert r.status_code == 200
    body = r.json()
    assert body["passages"] and body["index_version"]
    first = body["passages"][0]
    assert set(first) >= {"path", "start_line", "end_line", "text", "score"}
    lines = sed_lines(server.corpus / first["path"])
    assert first["text"] == "\n".join(lines[first["start_line"] - 1 : first["end_line"]])
    only = server.client.post("/v1/search", json={"query": "Putin", "paths": ["001_"]}).json()
    assert only["passages"] and all(p["path"].startswith("001_") for p in only["passages"])


def test_search_with_read_gives_the_passages_an_answer_cites_from(server: Server) -> None:
    question = "Who travelled with Putin?"
    asked = server.client.post("/v1/ask", json={"question": question}).json()
    read = server.client.post("/v1/search", json={"query": question, "read": True}).json()
    plain = server.client.post("/v1/search", json={"query": question}).json()

    def where(passages: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(p["path"], p["start_line"], p["end_line"]) for p in passages]

    assert where(read["passages"]) == where(asked["sources"])  # the same reading
    # without the cross reader: the same pool, ranked by the sentence reader alone
    assert plain["passages"] and set(where(plain["passages"])) & set(where(read["passages"]))


def test_documents(server: Server) -> None:
    docs = server.documents()
    assert docs["count"] == 5
    for doc in docs["documents"]:
        data = (server.corpus / doc["path"]).read_bytes()
        assert doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
        assert doc["chunks"] > 0 and doc["ingested_at"] and doc["uploaded"] is False


def test_ingest_from_a_second_allowed_root(server: Server) -> None:
    r = server.client.post("/v1/ingest", json={"paths": [str(server.home / "shared")]})
    assert r.status_code == 202, r.text
    job = wait_job(server.client, r.json()["job"]["id"])
    assert job["state"] == "succeeded" and job["files"]["indexed"] == 1
    assert "glossary.md" in {d["path"] for d in server.documents()["documents"]}
    found = server.client.post("/v1/search", json={"query": "Juche ideology"}).json()
    assert found["passages"][0]["path"] == "glossary.md"


def test_upload_ask_delete(server: Server) -> None:
    text = "The Pyongyang zoo opened a new penguin house in 2023.\nIt holds forty penguins.\n"
    files = [
        ("files", ("../../zoo notes?.txt", text.encode(), "text/plain")),
        ("files", ("pic.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png")),
    ]
    r = server.client.post("/v1/ingest", files=files)
    assert r.status_code == 202, r.text
    job = wait_job(server.client, r.json()["job"]["id"])
    assert job["source"] == "upload" and job["state"] == "succeeded"
    assert job["paths"] == ["uploads/zoo notes_.txt", "uploads/pic.png"]
    assert [s["path"] for s in job["skipped"]] == ["uploads/pic.png"]
    assert job["warnings"][0] == (  # renamed, and said so
        "the upload '../../zoo notes?.txt' was stored as uploads/zoo notes_.txt "
        "(an upload keeps only a plain file name)"
    )
    stored = server.corpus / "uploads" / "zoo notes_.txt"
    assert stored.read_text() == text
    assert not (server.corpus / "uploads" / "pic.png").exists()  # refused: not kept
    assert not (server.home / "zoo notes_.txt").exists()  # the name's ../ went nowhere
    listed = {d["path"]: d for d in server.documents()["documents"]}
    assert listed["uploads/zoo notes_.txt"]["uploaded"] is True

    question = "How many penguins does the zoo hold?"
    answer = server.client.post("/v1/ask", json={"question": question})
    assert {c["path"] for c in answer.json()["citations"]} == {"uploads/zoo notes_.txt"}

    version = server.documents()["index_version"]
    gone = server.client.delete("/v1/documents/uploads%2Fzoo%20notes_.txt")
    assert gone.status_code == 200, gone.text
    body = gone.json()
    assert body["chunks_deleted"] == listed["uploads/zoo notes_.txt"]["chunks"]
    assert body["file_removed"] is True and not stored.exists()
    assert body["index_version"] != version
    assert "uploads/zoo notes_.txt" not in {d["path"] for d in server.documents()["documents"]}
    found = server.client.post("/v1/search", json={"query": "penguin house zoo"}).json()
    assert all(p["path"] != "uploads/zoo notes_.txt" for p in found["passages"])
    again = server.client.delete("/v1/documents/uploads/zoo%20notes_.txt")
    assert again.status_code == 404 and error_of(again)["code"] == "document_not_found"


def test_a_refused_upload_leaves_nothing_and_names_no_server_path(server: Server) -> None:
    files = [("files", ("blob.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png"))]
    r = server.client.post("/v1/ingest", files=files)
    assert r.status_code == 202, r.text
    job = wait_job(server.client, r.json()["job"]["id"])
    assert job["state"] == "failed" and job["errors"], job
    error = job["errors"][0]
    assert error["code"] == "empty_corpus" and "uploads/blob.png" in error["message"]
    assert str(server.corpus) not in json.dumps(job)  # the client's names, not the server's
    assert not (server.corpus / "uploads" / "blob.png").exists()


def test_upload_named_the_rfc_5987_way(server: Server) -> None:
    """A part with only ``filename*=UTF-8''…`` (non-ASCII names) is a file, not a field."""
    boundary = "b0undary5987"
    body = (
        f"--{boundary}\r\n"
        "Content-Disposition: form-data; name=\"files\"; "
        "filename*=UTF-8''caf%C3%A9%20men%C3%BC.txt\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "The café on the Taedong river serves naengmyeon every day.\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    r = server.client.post(
        "/v1/ingest",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 202, r.text
    job = wait_job(server.client, r.json()["job"]["id"])
    assert job["state"] == "succeeded" and job["paths"] == ["uploads/café menü.txt"], job
    assert (server.corpus / "uploads" / "café menü.txt").read_text().startswith("The café")


def test_api_key_in_the_query_string_is_not_logged(server: Server) -> None:
    secret = "query-secret-7f3a"
    httpx.get(f"{server.url}/v1/documents?api_key={secret}&x=1", timeout=10)
    httpx.get(f"{server.url}/v1/documents?api%5Fkey={secret}", timeout=10)  # encoded names
    httpx.get(f"{server.url}/v1/documents?x=2&%61pi%2Dkey={secret}", timeout=10)
    httpx.get(f"{server.url}/v1/documents?token={secret}", timeout=10)
    log = (server.home / "server.log").read_text()
    deadline = time.monotonic() + 10
    while "token=***" not in log and time.monotonic() < deadline:  # the log line is written
        time.sleep(0.1)
        log = (server.home / "server.log").read_text()
    assert secret not in log and "api_key=***&x=1" in log and "token=***" in log
    assert "api%5Fkey=***" in log and "%61pi%2Dkey=***" in log


def test_legacy_routes(server: Server) -> None:
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "extractive" and health["chunks"] > 0
    assert server.client.post("/ask", json={"question": PUTIN_2000}).status_code == 200


def test_openapi_has_examples_and_security(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()  # public: no key
    paths = spec["paths"]
    for route in ("/v1/ask", "/v1/search", "/v1/ingest", "/v1/ingest/{job_id}", "/v1/documents",
                  "/v1/documents/{path}", "/healthz", "/readyz", "/metrics"):  # fmt: skip
        assert route in paths, route
    ask = paths["/v1/ask"]["post"]
    schema = spec["components"]["schemas"]["AskRequest"]
    assert schema["examples"] and ask["responses"]["200"]["content"]["application/json"]["example"]
    assert "text/event-stream" in ask["responses"]["200"]["content"]
    assert ask["responses"]["503"]["content"]["application/json"]["example"]["error"]["hint"]
    assert ask["security"] and "bearer" in spec["components"]["securitySchemes"]
    ingest = paths["/v1/ingest"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(ingest)
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_metrics(server: Server) -> None:
    r = server.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'rag_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'rag_http_request_duration_seconds_bucket{method="POST",route="/v1/search"' in text
    assert 'rag_retrieval_seconds_count{route="ask"}' in text
    assert 'rag_retrieval_seconds_count{route="search"}' in text
    assert "# TYPE rag_llm_seconds histogram" in text
    assert 'rag_ingest_jobs_total{source="paths"}' in text
    assert "rag_index_chunks " in text


# -- errors, provoked for real ---------------------------------------------------------------
def test_auth(server: Server) -> None:
    url = server.url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    missing = httpx.post(f"{url}/v1/ask", json={"question": PUTIN_2000})
    assert missing.status_code == 401 and error_of(missing)["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(f"{url}/v1/documents", headers={"X-API-Key": "nope-" + KEY})
    assert wrong.status_code == 401 and KEY not in wrong.text
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer x"}).status_code == 401
    assert httpx.get(f"{url}/v1/documents", headers={"X-API-Key": KEY}).status_code == 200


def test_untrusted_host_is_refused(server: Server) -> None:
    r = server.client.get("/v1/documents", headers={"Host": "evil.example:8000"})
    assert r.status_code == 400 and error_of(r)["code"] == "untrusted_host"
    assert server.client.get("/v1/documents", headers={"Host": "localhost"}).status_code == 200


def test_malformed_json_is_400(server: Server) -> None:
    r = server.client.post(
        "/v1/ask", content=b'{"question": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "bad_request"


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "q", "top_k": 0}, "top_k"),
        ({"question": "q", "backend": "gpt"}, "backend"),
        ({"question": "q", "top_k": "SECRET-VALUE-42"}, "top_k"),
        ({"question": "q", "nope": "SECRET-VALUE-42"}, "nope"),
    ],
)
def test_validation_is_422_without_echo(
    server: Server, payload: dict[str, Any], where: str
) -> None:
    r = server.client.post("/v1/ask", json=payload)
    assert r.status_code == 422
    error = error_of(r)
    assert error["code"] == "validation_error" and where in error["message"]
    assert "SECRET-VALUE-42" not in r.text


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "{home}/outside/secret.txt",
        "{home}/outside",
        "/etc/passwd",
        "%2e%2e/outside/secret.txt",
        "%252e%252e/outside",
        "sub/..%2F..%2Foutside",
        "escape.txt",  # a link to outside the roots
        "{home}",  # the parent of the roots
    ],
)
def test_paths_outside_the_roots_are_403(server: Server, path: str) -> None:
    before = server.documents()["index_version"]
    r = server.client.post("/v1/ingest", json={"paths": [path.format(home=server.home)]})
    assert r.status_code == 403, r.text
    assert error_of(r)["code"] == "path_not_allowed" and "0000" not in r.text
    assert str(server.home) not in error_of(r)["hint"]  # no server paths in the hint
    assert server.documents()["index_version"] == before


def test_nul_bytes_are_refused(server: Server) -> None:
    r = server.client.post("/v1/ingest", json={"paths": ["000\u0000.txt"]})
    assert r.status_code == 422 and "paths.0" in error_of(r)["message"]
    r = server.client.delete("/v1/documents/000_2f75ad98d5781bb4.txt%00")
    assert r.status_code == 422 and error_of(r)["code"] == "validation_error"
    r = server.client.post("/v1/ingest", json={"paths": ["000_2f75ad98d5781bb4.txt%00"]})
    assert r.status_code == 400 and error_of(r)["code"] == "bad_input"  # encoded NUL


@pytest.mark.parametrize("path", ["%2e%2e%2foutside%2fsecret.txt", "..%2F..%2Fetc%2Fpasswd"])
def test_delete_with_encoded_traversal_is_403(server: Server, path: str) -> None:
    r = server.client.delete(f"/v1/documents/{path}")
    assert r.status_code == 403 and error_of(r)["code"] == "path_not_allowed"


def test_unknown_things_are_404(server: Server) -> None:
    r = server.client.delete("/v1/documents/no-such-document.txt")
    assert r.status_code == 404 and error_of(r)["code"] == "document_not_found"
    r = server.client.get("/v1/ingest/0123456789abcdef0123456789abcdef")
    assert r.status_code == 404 and error_of(r)["code"] == "job_not_found"
    r = server.client.get("/nope")
    assert r.status_code == 404 and error_of(r)["code"] == "http_404"
    r = server.client.post("/v1/ingest", json={"paths": ["no-such-folder"]})
    assert r.status_code == 404 and error_of(r)["code"] == "path_not_found"


def _raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    """Send bytes on a plain socket (a Content-Length no client library would send)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_body_limit(server: Server) -> None:
    head = (
        "POST /v1/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: {50 * LIMIT}\r\nConnection: close\r\n\r\n"
    )
    reply = _raw_request(server.url, head, b'{"question": "')
    assert reply.startswith(b"HTTP/1.1 413") and b"payload_too_large" in reply

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(LIMIT // 8192 + 2):
            yield b"x" * 8192

    r = server.client.post(
        "/v1/ask", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"


def test_upload_limits(server: Server) -> None:
    many = [("files", (f"n{i}.txt", b"note\n", "text/plain")) for i in range(4)]
    r = server.client.post("/v1/ingest", files=many)
    assert r.status_code == 413 and "4 files" in error_of(r)["message"]
    big = [("files", ("big.txt", b"word " * 60_000, "text/plain"))]  # 0.29 MiB > 0.25
    r = server.client.post("/v1/ingest", files=big)
    assert r.status_code == 413 and error_of(r)["code"] == "upload_too_large"
    assert not (server.corpus / "uploads" / "big.txt").exists()
    assert not (server.corpus / "uploads" / "n0.txt").exists()


def test_unsupported_media_type(server: Server) -> None:
    r = server.client.post("/v1/ingest", content=b"notes", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"


def test_llm_unavailable_is_503_with_the_backends_hint(server: Server) -> None:
    r = server.client.post("/v1/ask", json={"question": PUTIN_2000, "backend": "ollama"})
    assert r.status_code == 503
    error = error_of(r)
    assert error["code"] == "llm_unavailable" and "ollama serve" in error["hint"]
    r = server.client.post(
        "/v1/ask", json={"question": PUTIN_2000, "backend": "llamacpp", "stream": True}
    )
    assert r.status_code == 503 and "RAG_LLAMACPP_MODEL_PATH" in error_of(r)["hint"]
    # search needs no LLM
    assert server.client.post("/v1/search", json={"query": "Putin"}).status_code == 200


# -- load: questions while an ingest job writes (last: it adds documents) -------------------
def test_concurrent_questions_during_an_ingest(server: Server) -> None:
    bulk = server.corpus / "bulk"
    bulk.mkdir()
    sources = sorted(server.corpus.glob("0*.txt"))
    for i in range(12):
        text = sources[i % len(sources)].read_text(encoding="utf-8")
        (bulk / f"copy_{i:02d}.txt").write_text(f"Copy {i} of {sources[i % 5].name}\n{text}")
    accepted = server.client.post("/v1/ingest", json={"paths": ["bulk"]})
    assert accepted.status_code == 202
    job_id = accepted.json()["job"]["id"]

    answers: list[dict[str, Any]] = []
    failures: list[str] = []
    overlapped = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as c:
            for n in range(100):
                r = c.post("/v1/ask", json={"question": PUTIN_2000})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    return
                answers.append(r.json())
                state = c.get(f"/v1/ingest/{job_id}").json()["state"]
                if state == "running":
                    overlapped.set()
                if state not in ("queued", "running") and n >= 1:
                    return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]
    assert overlapped.is_set()  # the questions really ran while the job wrote
    job = wait_job(server.client, job_id)
    assert job["state"] == "succeeded" and job["files"]["indexed"] == 12

    docs = server.documents()
    listed = {d["path"] for d in docs["documents"]}
    assert len(answers) >= 16
    cited: set[tuple[str, int, int, str]] = set()
    for answer in answers:
        assert not answer["abstained"] and answer["citations"]
        assert_citations_resolve(server.corpus, answer, listed)
        cited |= {
            (c["path"], c["start_line"], c["end_line"], c["quote"]) for c in answer["citations"]
        }
    for path, start, end, quote in cited:  # a chunk in the index holds the cited lines
        found = server.client.post("/v1/search", json={"query": quote, "paths": [path]}).json()
        spans = [(p["start_line"], p["end_line"]) for p in found["passages"] if p["path"] == path]
        assert any(first <= start and end <= last for first, last in spans), (path, start, spans)
    ready = server.client.get("/readyz").json()
    assert job["chunks"]["total"] == docs["chunks"] == ready["index"]["chunks"]
