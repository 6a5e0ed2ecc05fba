"""A stalled LLM server (accepts connections, never answers) freezes nothing (issue 19, item 4).

Probes of Ollama have their own short timeout (RAG_PROBE_TIMEOUT), far below the first-token
timeout (set to 300 s here, so a probe that used it would hold every test past its bound).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.api.app import create_app
from tests.api_support import LiveServer
from tests.conftest import CORPUS, REPO, free_port, make_runtime

RAG = str(Path(sys.executable).parent / "rag")
WAIT = 60.0  # generous: a stalled probe used to take the first-token timeout (here 300 s)


class StalledServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def stalled() -> Iterator[StalledServer]:
    server = StalledServer()
    yield server
    server.close()


def _env(home: Path, stalled: StalledServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_CONFIG=str(home / "rag.toml"),
        RAG_INDEX_DIR=str(home / "index"),
        RAG_CORPUS_DIR=str(CORPUS),
        RAG_LLAMACPP_MODEL_PATH=str(home / "no-such-model.gguf"),  # auto: no llama.cpp either
        RAG_FIRST_TOKEN_TIMEOUT="300",
        RAG_PROBE_TIMEOUT="1",
        RAG_MODELS_DIR=str(REPO / "data" / "models"),
        OLLAMA_HOST=stalled.url,
        NO_COLOR="1",
        **extra,
    )
    return env


def test_serve_answers_healthz_while_ollama_stalls(
    stalled: StalledServer, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(tmp_path, stalled, RAG_LLM_BACKEND="auto")
    server = subprocess.Popen(
        [RAG, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        alive = False
        while time.monotonic() < deadline and server.poll() is None and not alive:
            try:
                alive = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert alive, "rag serve did not answer /healthz while Ollama stalled"
        llm = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=WAIT).json()["llm"]
        assert llm["backend"] == "extractive" and "did not answer a probe" in llm["reason"]
    finally:
        server.terminate()
        server.wait(30)


def test_readyz_is_not_ready_when_the_configured_backend_stalls(
    stalled: StalledServer, tmp_path: Path, embedder: Any
) -> None:
    runtime = make_runtime(tmp_path, embedder, llm_backend="ollama", ollama_host=stalled.url,
                           first_token_timeout=300.0, probe_timeout=1.0)  # fmt: skip
    runtime.ingest_service().ingest()
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        r = httpx.get(f"{live.url}/readyz", timeout=WAIT)
        body = r.json()
        assert r.status_code == 503 and body["status"] == "not_ready", body
        assert body["index"]["opened"] is True
        llm = body["llm"]
        assert llm["backend"] == "ollama" and llm["answering"] is False
        assert llm["available"] == ["extractive"]
        assert llm["error"]["code"] == "llm_timeout"
        assert "did not answer a probe (/api/tags) within 1 s" in llm["error"]["message"]
        assert "RAG_PROBE_TIMEOUT" in llm["error"]["hint"]
        # the backend that can answer does
        answered = httpx.post(
            f"{live.url}/v1/ask",
            json={"question": "When did Putin visit North Korea?", "backend": "extractive"},
            timeout=WAIT,
        )
        assert answered.status_code == 200 and not answered.json()["abstained"]


def test_cli_ask_says_why_instead_of_waiting(stalled: StalledServer, tmp_path: Path) -> None:
    env = _env(tmp_path, stalled, RAG_LLM_BACKEND="extractive")
    done = subprocess.run([RAG, "ingest"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    question = "When did Putin last visit North Korea before this trip?"
    asked = subprocess.run(
        [RAG, "ask", question, "--backend", "ollama"],
        env=env, capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert asked.returncode != 0 and "Traceback" not in asked.stderr
    assert f"error: Ollama at {stalled.url} accepted the connection but did not answer" in (
        asked.stderr
    )
    auto = subprocess.run(
        [RAG, "ask", question, "--backend", "auto"],
        env=env, capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    assert "note: Ollama at" in auto.stderr and "did not answer a probe" in auto.stderr
    assert "July 2000" in auto.stdout
