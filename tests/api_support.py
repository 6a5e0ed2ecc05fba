"""Helpers for the API tests: a real uvicorn on 127.0.0.1, SSE parsing, a fake Ollama."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import CORPUS, free_port, sed_lines
from tests.ollama_wire import MODEL, chat_line

RAG = str(Path(sys.executable).parent / "rag")
JULY_2000 = "Putin’s last visit to North Korea was in July 2000."


class LiveServer:
    """A FastAPI app served by uvicorn on 127.0.0.1 in a thread of the test process (the
    embedding model is shared, so it starts in about a second)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def rag_serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """`rag serve` (extractive backend) in a subprocess on 127.0.0.1 and a free port, its
    output in ``log`` (a file: a full pipe would block the server).  Yields its URL once
    /healthz answers; stops it afterwards, whatever happened in between."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [RAG, "serve", "--port", str(port), "--backend", "extractive"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc, log)
        yield url
    finally:
        stop_process(proc)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until ``url`` answers 200; an AssertionError with the end of ``log`` if the process
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer: {log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def copy_corpus(dest: Path) -> Path:
    shutil.copytree(CORPUS, dest)
    return dest


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Server-Sent Events, one (event, data) at a time, as a browser's EventSource parses
    them: fields until a blank line; ``:`` lines are comments; data is JSON here."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/ingest/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def assert_citations_resolve(corpus: Path, answer: dict[str, Any], listed: set[str]) -> None:
    """Each citation names a listed document, and its quote is those lines of the file."""
    for c in answer["citations"]:
        assert c["path"] in listed, c["path"]
        lines = sed_lines(corpus / c["path"])
        assert c["quote"] == "\n".join(lines[c["start_line"] - 1 : c["end_line"]])


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert "Traceback" not in response.text
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"code", "message", "hint"}
    return error


# -- a fake Ollama, at the wire (NDJSON), switchable between behaviours ----------------------
def _line(content: str, done: bool = False) -> bytes:
    return chat_line(content, done).encode()


class FakeOllama:
    """``mode``: answer (the July 2000 sentence), slow (the July 2000 sentence over and over,
    one a token, 0.1 s apart), broken (the sentence and a word, then an error line), stall
    (nothing for 3 s), missing (model not pulled), script (``script``, word by word)."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.script = ""
        self.slow_tokens = 60
        self.written: list[int] = []  # per chat request: tokens written before it ended
        self.closed_early = threading.Event()
        self.requests = 0

    def tags(self, request: Request) -> Response:
        model = {"name": MODEL, "model": MODEL, "modified_at": "2026-11-01T00:00:00Z",
                 "size": 1, "digest": "sha256:0", "details": {}}  # fmt: skip
        return Response(json.dumps({"models": [model]}), content_type="application/json")

    def chat(self, request: Request) -> Response:
        self.requests += 1
        mode = self.mode
        if mode == "missing":
            body = json.dumps({"error": f"model '{MODEL}' not found, try pulling it first"})
            return Response(body, status=404, content_type="application/json")
        if mode == "stall":
            time.sleep(3.0)
            return Response(_line("late", done=True), content_type="application/x-ndjson")
        return Response(self._stream(mode), content_type="application/x-ndjson")

    def _stream(self, mode: str) -> Iterator[bytes]:
        index = len(self.written)
        self.written.append(0)
        words = re.findall(r"\S+\s*", JULY_2000)
        if mode == "slow":
            words = [f"{JULY_2000} " for _ in range(self.slow_tokens)]
        elif mode == "script":
            words = re.findall(r"\S+\s*", self.script)
        elif mode == "broken":
            words = [*words[:-1], words[-1] + " ", "It"]
        finished = False
        try:
            for word in words:
                yield _line(word)
                self.written[index] += 1
                if mode == "slow":
                    time.sleep(0.1)
                if mode == "broken" and self.written[index] == len(words):
                    yield (json.dumps({"error": "out of memory"}) + "\n").encode()
                    finished = True
                    return
            yield _line("", done=True)
            finished = True
        finally:
            if not finished:
                self.closed_early.set()


@contextmanager
def fake_ollama_server(fake: FakeOllama) -> Iterator[str]:
    """``fake`` answering Ollama's /api/tags and /api/chat on 127.0.0.1 (yields its base
    URL, for ``ollama_host``); stopped afterwards, whatever happened in between."""
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    server.expect_request("/api/tags").respond_with_handler(fake.tags)
    server.expect_request("/api/chat", method="POST").respond_with_handler(fake.chat)
    server.start()
    try:
        yield server.url_for("/").rstrip("/")
    finally:
        server.clear()
        server.stop()
