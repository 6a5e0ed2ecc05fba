"""The bench's /v1/ask load: a warm round is asked over the connection the cold round used.

With `rag serve --workers N`, one connection is served by one worker and each worker keeps its
own caches; a warm round on a new connection may meet a worker that never saw the questions
(the `chroma run` rows of 2850db2's and 55d4f70's 1M runs: "warm" 121-150 ms, as cold)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench.server import ask_cold_then_warm, ask_load


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn speaks
    seen: ClassVar[list[tuple[str, int]]] = []
    fail_first: ClassVar[bool] = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append((json.loads(body)["question"], self.client_address[1]))
        payload = b'{"answer": "x"}'
        failing = _Recorder.fail_first and len(_Recorder.seen) == 1
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.fail_first = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_warm_round_uses_the_cold_rounds_connection(server: str) -> None:
    questions = ["a?", "b?", "c?"]
    cold, warm = ask_cold_then_warm(server, questions)
    assert cold["n"] == warm["n"] == 3 and cold["errors"] == warm["errors"] == 0
    assert [q for q, _ in _Recorder.seen] == questions * 2
    assert len({port for _, port in _Recorder.seen}) == 1  # one connection for both rounds


def test_separate_loads_open_separate_connections(server: str) -> None:
    """What the warm round did before: a load of its own, on a connection of its own."""
    ask_load(server, ["a?"], 1, 1)
    ask_load(server, ["a?"], 1, 1)
    assert len({port for _, port in _Recorder.seen}) == 2


def test_eight_clients_ask_over_eight_connections(server: str) -> None:
    got = ask_load(server, ["a?", "b?"], 8, 2)
    assert got["n"] == 16 and got["requests"] == 16
    assert len({port for _, port in _Recorder.seen}) == 8


def test_an_error_counts_in_its_own_round(server: str) -> None:
    _Recorder.fail_first = True
    cold, warm = ask_cold_then_warm(server, ["a?", "b?"])
    assert (cold["errors"], cold["n"]) == (1, 1) and cold["first_error"].startswith("500")
    assert (warm["errors"], warm["n"], warm["first_error"]) == (0, 2, None)
