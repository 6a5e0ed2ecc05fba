"""The real app served by uvicorn on 127.0.0.1, driven by a real HTTP client."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, free_port

RAG = str(Path(sys.executable).parent / "rag")


@pytest.fixture(scope="module")
def server(cli_env: dict[str, str]) -> Iterator[str]:
    ingest = subprocess.run(
        [RAG, "ingest", str(CORPUS)], env=cli_env, capture_output=True, text=True, timeout=300
    )
    assert ingest.returncode == 0, ingest.stderr
    port = free_port()
    proc = subprocess.Popen(
        [RAG, "serve", "--port", str(port), "--backend", "extractive"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("server did not become ready")
        yield url
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        server.output = out  # type: ignore[attr-defined]


def test_health(server: str) -> None:
    body = httpx.get(f"{server}/health").json()
    assert body["status"] == "ok" and body["backend"] == "extractive" and body["chunks"] > 0


def test_ask(server: str) -> None:
    r = httpx.post(f"{server}/ask", json={"question": PUTIN_2000}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert "2000" in body["answer"] and not body["abstained"]
    assert {(c["path"], c["start_line"]) for c in body["citations"]} & PUTIN_2000_LINES
    assert all(c["quote"] for c in body["citations"])


def test_ask_unanswerable(server: str) -> None:
    body = httpx.post(f"{server}/ask", json={"question": OFF_TOPIC}, timeout=60).json()
    assert body["abstained"] is True and body["citations"] == []


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "q", "top_k": 0}, "top_k"),
        ({"question": "q", "backend": "gpt"}, "backend"),
    ],
)
def test_bad_requests_are_json_errors(server: str, payload: dict, where: str) -> None:  # type: ignore[type-arg]
    r = httpx.post(f"{server}/ask", json=payload, timeout=30)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_error" and where in error["message"]


def test_unknown_route_is_a_json_404(server: str) -> None:
    r = httpx.get(f"{server}/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "http_404"


def test_missing_ollama_is_a_503_with_a_hint(server: str) -> None:
    r = httpx.post(f"{server}/ask", json={"question": PUTIN_2000, "backend": "ollama"}, timeout=60)
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "llm_unavailable" and "ollama serve" in error["hint"]
    assert "Traceback" not in r.text
