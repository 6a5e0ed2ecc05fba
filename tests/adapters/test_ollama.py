"""The Ollama backend against a loopback server speaking Ollama's wire format (NDJSON)."""

from __future__ import annotations

import json
import os
import time
from urllib.parse import urlparse

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rag.adapters.llm.ollama import OllamaLLM
from rag.adapters.llm.select import choose_auto
from rag.config import Settings
from rag.errors import LLMStreamError, LLMTimeoutError, LLMUnavailableError, ModelNotFoundError
from rag.prompts import RenderedPrompt
from tests.conftest import PUTIN_2000, PUTIN_2000_LINES, free_port, make_runtime
from tests.ollama_wire import MODEL, july_2000_answer
from tests.ollama_wire import chat_line as _line


def _tags(*names: str) -> dict:  # type: ignore[type-arg]
    return {
        "models": [
            {
                "name": n,
                "model": n,
                "modified_at": "2026-11-01T00:00:00Z",
                "size": 1,
                "digest": "sha256:0",
                "details": {},
            }
            for n in names
        ]
    }


def _settings(server: HTTPServer, **kw: object) -> Settings:
    return Settings(ollama_host=server.url_for("/").rstrip("/"), llm_backend="ollama", **kw)  # type: ignore[arg-type]


def _answering_model(request: Request) -> Response:
    """Reads the passages like a model would and cites the one that says July 2000."""
    body = request.get_json()
    _answering_model.requests.append(body)  # type: ignore[attr-defined]
    stream = july_2000_answer(body["messages"][-1]["content"])
    return Response(stream, content_type="application/x-ndjson")


_answering_model.requests = []  # type: ignore[attr-defined]


def test_streamed_answer_is_cited(httpserver: HTTPServer, tmp_path, embedder) -> None:  # type: ignore[no-untyped-def]
    httpserver.expect_request("/api/tags").respond_with_json(_tags(MODEL))
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(_answering_model)
    runtime = make_runtime(tmp_path, embedder, ollama_host=httpserver.url_for("/").rstrip("/"))
    runtime.ingest_service().ingest()
    tokens: list[str] = []
    answer = runtime.answer_service.ask(PUTIN_2000, on_token=tokens.append)  # auto -> ollama
    assert answer.backend == "ollama" and answer.model == MODEL
    assert "has llama3.2:3b" in answer.backend_reason
    assert "".join(tokens).startswith("Putin last visited North Korea in July 2000 [")
    assert answer.answer == "Putin last visited North Korea in July 2000. [1]"
    assert {(c.path, c.start_line) for c in answer.citations} <= PUTIN_2000_LINES
    assert answer.prompt_version == "answer_chat@1"
    sent = _answering_model.requests[-1]  # type: ignore[attr-defined]
    assert sent["model"] == MODEL and sent["stream"] is True
    assert sent["options"]["num_ctx"] >= 2048 and sent["options"]["temperature"] == 0


def test_model_not_found(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat").respond_with_json(
        {"error": f"model '{MODEL}' not found, try pulling it first"}, status=404
    )
    llm = OllamaLLM(_settings(httpserver))
    with pytest.raises(ModelNotFoundError) as caught:
        list(llm.stream(RenderedPrompt("s", "u", "", "v"), 10))
    assert caught.value.hint == f"run `ollama pull {MODEL}`"


def test_probe_reports_a_missing_model(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/tags").respond_with_json(_tags("qwen2.5:0.5b"))
    with pytest.raises(ModelNotFoundError, match="does not have the model"):
        OllamaLLM(_settings(httpserver)).probe()


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    llm = OllamaLLM(Settings(ollama_host=url))  # type: ignore[call-arg]
    with pytest.raises(LLMUnavailableError) as caught:
        list(llm.stream(RenderedPrompt("s", "u", "", "v"), 10))
    assert caught.value.message == f"Ollama is not reachable at {url}"
    assert "ollama serve" in caught.value.hint


def test_stall_past_the_first_token_timeout(httpserver: HTTPServer) -> None:
    def stall(request: Request) -> Response:
        time.sleep(2.0)
        return Response(_line("late", done=True), content_type="application/x-ndjson")

    httpserver.expect_request("/api/chat").respond_with_handler(stall)
    llm = OllamaLLM(_settings(httpserver, first_token_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match=r"sent no token for 0\.5 s"):
        list(llm.stream(RenderedPrompt("s", "u", "", "v"), 10))
    assert time.monotonic() - started < 1.9


def test_stream_that_ends_without_done_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat").respond_with_data(
        _line("Putin") + _line(" visited"), content_type="application/x-ndjson"
    )
    llm = OllamaLLM(_settings(httpserver))
    got: list[str] = []
    with pytest.raises(LLMStreamError, match="ended before it was complete"):
        for piece in llm.stream(RenderedPrompt("s", "u", "", "v"), 10):
            got.append(piece)
    assert got == ["Putin", " visited"]


def test_stream_cut_mid_line_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat").respond_with_data(
        _line("Putin") + _line(" visited")[:25], content_type="application/x-ndjson"
    )
    with pytest.raises(LLMStreamError, match="broke mid-way"):
        list(OllamaLLM(_settings(httpserver)).stream(RenderedPrompt("s", "u", "", "v"), 10))


def test_error_line_inside_the_stream(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat").respond_with_data(
        _line("Putin") + json.dumps({"error": "out of memory"}) + "\n",
        content_type="application/x-ndjson",
    )
    with pytest.raises(LLMUnavailableError, match="out of memory"):
        list(OllamaLLM(_settings(httpserver)).stream(RenderedPrompt("s", "u", "", "v"), 10))


def test_large_prompt_gets_a_large_enough_context(httpserver: HTTPServer) -> None:
    seen: list[dict] = []  # type: ignore[type-arg]

    def record(request: Request) -> Response:
        seen.append(request.get_json())
        return Response(_line("ok", done=True), content_type="application/x-ndjson")

    httpserver.expect_request("/api/chat").respond_with_handler(record)
    big = "Pyongyang summit. " * 2000  # ~36k characters: far more than Ollama's default 2048
    list(OllamaLLM(_settings(httpserver)).stream(RenderedPrompt("sys", big, "", "v"), 256))
    num_ctx = seen[0]["options"]["num_ctx"]
    assert num_ctx > 2048
    assert num_ctx >= len(big) / 3 + 256  # at most ~3 characters per token: nothing cut


def test_auto_falls_back_when_ollama_lacks_the_model(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/tags").respond_with_json(_tags("other:1b"))
    settings = _settings(httpserver, llamacpp_model_path="/nonexistent/model.gguf")
    choice = choose_auto(settings)
    assert choice.backend == "extractive"
    assert "does not have the model" in choice.reason and "not found" in choice.reason


def _live_host() -> str | None:
    host = os.environ.get("OLLAMA_HOST")
    if not host:
        return None
    from rag.config import normalize_ollama_host

    url = normalize_ollama_host(host)
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None  # tests only talk to this machine
    try:
        httpx.get(f"{url}/api/tags", timeout=1.0).raise_for_status()
    except httpx.HTTPError:
        return None
    return url


@pytest.mark.live
@pytest.mark.skipif(_live_host() is None, reason="no Ollama server answers at OLLAMA_HOST")
def test_live_ollama(tmp_path, embedder) -> None:  # type: ignore[no-untyped-def]
    host = _live_host()
    model = os.environ.get("OLLAMA_TEST_MODEL", "llama3.2:3b")
    runtime = make_runtime(
        tmp_path, embedder, ollama_host=host, ollama_model=model, llm_backend="ollama"
    )
    runtime.ingest_service().ingest()
    answer = runtime.answer_service.ask(PUTIN_2000)
    assert answer.backend == "ollama"
    if not answer.abstained:
        assert answer.citations
