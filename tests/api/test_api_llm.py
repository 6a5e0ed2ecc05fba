"""The API with a generating backend: Ollama faked at the wire on 127.0.0.1 (NDJSON).

One server (uvicorn in a thread): one LLM slot, one place in the queue, 1 s queue wait,
1 s first-token timeout and a 4 s request deadline, so every limit is quick to reach.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rag.api.app import create_app
from tests.api_support import (
    MODEL,
    FakeOllama,
    LiveServer,
    assert_citations_resolve,
    error_of,
    fake_ollama_server,
    sse_events,
)
from tests.conftest import PUTIN_2000, make_runtime


class Env:
    def __init__(self, url: str, fake: FakeOllama, corpus: Any) -> None:
        self.url = url
        self.fake = fake
        self.corpus = corpus
        self.client = httpx.Client(base_url=url, timeout=30)

    def metric(self, line_start: str) -> float:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Env]:
    fake = FakeOllama()
    with fake_ollama_server(fake) as ollama_host:
        tmp = tmp_path_factory.mktemp("api-llm")
        runtime = make_runtime(
            tmp,
            embedder,
            llm_backend="ollama",
            ollama_host=ollama_host,
            first_token_timeout=1.0,
            llm_concurrency=1,
            llm_queue=1,
            llm_queue_timeout=1.0,
            request_timeout=4.0,
        )
        runtime.ingest_service().ingest()
        with LiveServer(create_app(runtime.settings, runtime)) as live:
            yield Env(live.url, fake, runtime.settings.corpus_dir)


@pytest.fixture(autouse=True)
def _answering(env: Env) -> None:
    env.fake.mode = "answer"
    env.fake.closed_early.clear()


def _stream(env: Env, question: str = PUTIN_2000) -> list[tuple[str, Any]]:
    with env.client.stream("POST", "/v1/ask", json={"question": question, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        return list(sse_events(r.iter_lines()))


def test_readyz_probes_the_model(env: Env) -> None:
    llm = env.client.get("/readyz").json()["llm"]
    assert llm["backend"] == "ollama" and llm["model"] == MODEL and llm["answering"] is True


def test_tokens_stream_then_citations_then_done(env: Env) -> None:
    events = _stream(env)
    names = [name for name, _ in events]
    assert names == ["token", "citations", "done"]  # one sentence, sent once it was verified
    done = events[-1][1]
    assert "".join(d["text"] for n, d in events if n == "token") == done["answer"]
    assert done["backend"] == "ollama" and done["model"] == MODEL and not done["abstained"]
    assert "July 2000" in done["answer"] and done["prompt_version"]
    assert events[-2][1]["citations"] == done["citations"] and done["citations"]
    assert_citations_resolve(env.corpus, done, {c["path"] for c in done["citations"]})


def test_json_answer_from_the_model(env: Env) -> None:
    r = env.client.post("/v1/ask", json={"question": PUTIN_2000})
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == "ollama" and "July 2000" in body["answer"] and body["citations"]
    assert body["timings"]["generation_ms"] > 0
    assert env.metric('rag_llm_seconds_count{backend="ollama"}') >= 1


def test_fallback_line_carries_the_readers_confidence(env: Env) -> None:
    """A model's answer the lines do not support is replaced by the reader's best line: that
    line is answered with the reader's confidence, never 0.0 while not abstaining."""
    env.fake.mode, env.fake.script = "script", "Bananas grow on the moon every winter."
    body = env.client.post("/v1/ask", json={"question": PUTIN_2000}).json()
    assert any("instead of the model's answer" in note for note in body["notes"]), body
    assert not body["abstained"] and body["citations"]
    assert body["confidence"] > 0.0, body


def test_disconnect_mid_stream_stops_the_generation(env: Env) -> None:
    env.fake.mode = "slow"
    stopped = env.metric('rag_llm_stopped_total{reason="disconnect"}')
    with env.client.stream("POST", "/v1/ask", json={"question": PUTIN_2000, "stream": True}) as r:
        tokens = 0
        for name, _ in sse_events(r.iter_lines()):
            tokens += name == "token"
            if tokens == 3:
                break  # leave: the response is closed with the connection
    assert env.fake.closed_early.wait(5), "the model kept generating"
    assert env.fake.written[-1] < env.fake.slow_tokens
    assert env.metric('rag_llm_stopped_total{reason="disconnect"}') == stopped + 1
    env.fake.mode = "answer"  # the slot was given back: the next question is answered
    assert env.client.post("/v1/ask", json={"question": PUTIN_2000}).status_code == 200


def test_an_mcp_client_giving_up_on_ask_stops_the_generation(env: Env) -> None:
    """The official MCP client over /mcp: a call it cancels stops the model as a disconnect
    does; the session goes on, and an MCP error of the model is a tool error with its hint."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    env.fake.mode = "slow"
    stopped = env.metric('rag_llm_stopped_total{reason="disconnect"}')
    first = len(env.fake.written)

    async def main() -> tuple[Any, Any]:
        async with (
            httpx2.AsyncClient(timeout=30) as http,
            Client(streamable_http_client(f"{env.url}/mcp", http_client=http)) as client,
        ):
            with anyio.move_on_after(1.0) as scope:
                await client.call_tool("ask", {"question": PUTIN_2000})
            assert scope.cancelled_caught
            assert await anyio.to_thread.run_sync(env.fake.closed_early.wait, 5)
            env.fake.mode = "answer"
            answered = await client.call_tool("ask", {"question": PUTIN_2000})
            env.fake.mode = "missing"
            failed = await client.call_tool("ask", {"question": PUTIN_2000})
            return answered, failed

    answered, failed = anyio.run(main)
    assert env.fake.written[first] < env.fake.slow_tokens, "the model kept generating"
    assert env.metric('rag_llm_stopped_total{reason="disconnect"}') == stopped + 1
    assert not answered.is_error and "July 2000" in answered.structured_content["answer"]
    assert failed.is_error and failed.meta["rag/error"]["code"] == "model_not_found"
    assert "ollama pull" in failed.meta["rag/error"]["hint"]


def test_model_failing_mid_stream_is_an_error_event(env: Env) -> None:
    env.fake.mode = "broken"
    events = _stream(env)
    names = [name for name, _ in events]
    assert names == ["token", "error"]  # the sentence that passed, then the failure
    error = events[-1][1]["error"]
    assert error["code"] == "llm_unavailable" and "out of memory" in error["message"]


def test_missing_model_is_503_with_the_pull_hint(env: Env) -> None:
    env.fake.mode = "missing"
    for stream in (False, True):  # failing before the first token: a JSON error either way
        r = env.client.post("/v1/ask", json={"question": PUTIN_2000, "stream": stream})
        assert r.status_code == 503
        error = error_of(r)
        assert error["code"] == "model_not_found" and error["hint"] == f"run `ollama pull {MODEL}`"


def test_model_timeout_is_504(env: Env) -> None:
    env.fake.mode = "stall"  # no token for 3 s; the first-token timeout is 1 s
    started = time.monotonic()
    r = env.client.post("/v1/ask", json={"question": PUTIN_2000})
    assert r.status_code == 504 and error_of(r)["code"] == "llm_timeout"
    assert time.monotonic() - started < 2.9


def test_request_deadline_is_504_and_stops_the_model(env: Env) -> None:
    env.fake.mode = "slow"  # 60 tokens, 0.1 s apart: longer than the 4 s deadline
    started = time.monotonic()
    r = env.client.post("/v1/ask", json={"question": PUTIN_2000})
    assert r.status_code == 504 and error_of(r)["code"] == "deadline_exceeded"
    assert 3.5 < time.monotonic() - started < 5.5
    assert env.fake.closed_early.wait(5)
    assert env.metric('rag_llm_stopped_total{reason="deadline"}') >= 1


def test_overload_is_429_at_once_or_503_after_the_wait(env: Env) -> None:
    env.fake.mode = "slow"
    results: dict[str, httpx.Response] = {}
    with env.client.stream("POST", "/v1/ask", json={"question": PUTIN_2000, "stream": True}) as a:
        events = sse_events(a.iter_lines())  # kept: dropping it would close A's connection
        next(events)  # A generates: the one slot is taken

        def waiter() -> None:
            results["b"] = httpx.post(
                f"{env.url}/v1/ask", json={"question": PUTIN_2000}, timeout=30
            )

        b = threading.Thread(target=waiter)
        b.start()
        time.sleep(0.4)  # B waits in the one place of the queue
        started = time.monotonic()
        c = env.client.post("/v1/ask", json={"question": PUTIN_2000})
        refused_in = time.monotonic() - started
        b.join(10)
    assert c.status_code == 429 and error_of(c)["code"] == "overloaded"
    assert refused_in < 0.5 and int(c.headers["retry-after"]) >= 1
    waited = results["b"]
    assert waited.status_code == 503 and error_of(waited)["code"] == "overloaded"
    assert int(waited.headers["retry-after"]) >= 1
    assert env.metric('rag_llm_rejected_total{reason="queue_full"}') >= 1
    assert env.metric('rag_llm_rejected_total{reason="wait_timeout"}') >= 1
    # search needs no LLM slot
    assert env.client.post("/v1/search", json={"query": "Putin"}).status_code == 200
