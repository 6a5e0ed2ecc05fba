"""The OpenAI-compatible routes, driven by the official ``openai`` client against uvicorn on
loopback: extractive answers, and an LLM path through a fake Ollama at the wire."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from rag.api.app import create_app
from tests.api_support import MODEL, FakeOllama, LiveServer, fake_ollama_server
from tests.conftest import OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, free_port, make_runtime

KEY = "openai-test-key"
SOURCES = re.compile(r"\n\nSources: (\[\d+\] \S+:L\d+(?:-L\d+)?(?:; |$))+\Z")


class Env:
    def __init__(self, url: str, fake: FakeOllama) -> None:
        self.url = url
        self.fake = fake
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        self.http = httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Env]:
    fake = FakeOllama()
    with fake_ollama_server(fake) as ollama_host:
        runtime = make_runtime(
            tmp_path_factory.mktemp("api-openai"),
            embedder,
            llm_backend="extractive",
            ollama_host=ollama_host,
            api_key=KEY,
        )
        runtime.ingest_service().ingest()
        with LiveServer(create_app(runtime.settings, runtime)) as live:
            yield Env(live.url, fake)


@pytest.fixture(autouse=True)
def _answering(env: Env) -> None:
    env.fake.mode = "answer"


def rag_of(obj: Any) -> dict[str, Any]:
    extra: dict[str, Any] = obj.model_extra["rag"]
    return extra


def ask(env: Env, text: str, model: str = "rag-extractive", **kwargs: Any) -> Any:
    return env.client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


def test_models_lists_the_backends_that_can_answer(env: Env) -> None:
    ids = [m.id for m in env.client.models.list()]
    llamacpp = importlib.util.find_spec("llama_cpp") is not None
    assert ids == ["rag", "rag-extractive", *(["rag-llamacpp"] * llamacpp), "rag-ollama"]
    assert env.client.models.retrieve("rag-ollama").owned_by == "rag"
    with pytest.raises(openai.NotFoundError) as missing:
        env.client.models.retrieve("rag-nonsense")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_models_leave_out_a_backend_that_cannot_answer(tmp_path: Any, embedder: Any) -> None:
    runtime = make_runtime(tmp_path, embedder, ollama_host=f"http://127.0.0.1:{free_port()}")
    with LiveServer(create_app(runtime.settings, runtime)) as live:  # Ollama down, no index
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0)
        ids = [m.id for m in client.models.list()]
        assert "rag-ollama" not in ids and ids[:2] == ["rag", "rag-extractive"]
        with pytest.raises(openai.NotFoundError) as down:
            client.models.retrieve("rag-ollama")
        assert "unavailable now" in down.value.body["message"]  # type: ignore[index]


def test_answer_text_markers_and_sources(env: Env) -> None:
    completion = ask(env, PUTIN_2000)
    assert completion.object == "chat.completion" and completion.model == "rag-extractive"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert "July 2000" in text and "[1]" in text.split("\n\n")[0]
    assert SOURCES.search(text), text
    extra = rag_of(completion)
    assert not extra["abstained"] and extra["confidence"] > 0.5
    cited = extra["citations"][0]
    assert {"path", "start_line", "end_line", "quote", "verified", "support"} <= set(cited)
    assert (cited["path"], cited["start_line"]) in PUTIN_2000_LINES
    assert text.endswith(f"[1] {cited['path']}:L{cited['start_line']}")
    assert extra["question"] == PUTIN_2000 and extra["query"] is None  # not a follow-up


def test_same_citations_as_v1_ask(env: Env) -> None:
    for question in (PUTIN_2000, "How did Kim Jong Un travel to Russia?"):
        extra = rag_of(ask(env, question))
        asked = env.http.post("/v1/ask", json={"question": question, "backend": "extractive"})
        assert asked.status_code == 200
        body = asked.json()
        assert extra["citations"] == body["citations"] and extra["citations"]
        assert (extra["answer"], extra["abstained"]) == (body["answer"], body["abstained"])


def test_stream_of_chunks_ends_with_the_citations(env: Env) -> None:
    whole = ask(env, PUTIN_2000).choices[0].message.content
    chunks = list(ask(env, PUTIN_2000, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole
    extra = rag_of(chunks[-1])
    assert extra["citations"] and (extra["citations"][0]["path"], extra["citations"][0][
        "start_line"]) in PUTIN_2000_LINES  # fmt: skip
    assert all("rag" not in (c.model_extra or {}) for c in chunks[:-1])


def test_raw_stream_ends_with_done(env: Env) -> None:
    body = {"model": "rag", "stream": True, "messages": [{"role": "user", "content": PUTIN_2000}]}
    with env.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: {") for line in lines[:-1])


def test_llm_answer_streams_sentence_by_sentence_once_verified(env: Env) -> None:
    chunks = list(ask(env, PUTIN_2000, model="rag-ollama", stream=True))
    tokens = [c.choices[0].delta.content for c in chunks[1:-2]]
    extra = rag_of(chunks[-1])
    assert tokens == [extra["answer"]]  # the model's one sentence, sent once it was verified
    assert extra["backend"] == "ollama" and extra["model"] == MODEL
    assert extra["citations"] and all(c["verified"] for c in extra["citations"])
    sources = chunks[-2].choices[0].delta.content
    assert sources.startswith("\n\nSources: [1] ") and extra["citations"][0]["path"] in sources
    whole = ask(env, PUTIN_2000, model="rag-ollama").choices[0].message.content
    assert whole.startswith(extra["answer"]) and whole.endswith(sources)


def test_leaving_a_stream_stops_the_model(env: Env) -> None:
    env.fake.mode = "slow"  # 60 sentences, 0.1 s apart
    env.fake.closed_early.clear()
    stream = ask(env, PUTIN_2000, model="rag-ollama", stream=True)
    for seen, _ in enumerate(stream, 1):
        if seen == 4:
            break
    stream.close()
    assert env.fake.closed_early.wait(10)  # the model's stream was cut, not run to its end


def test_failure_mid_stream_raises_in_the_client(env: Env) -> None:
    env.fake.mode = "broken"  # a sentence and a word, then the model fails
    stream = ask(env, PUTIN_2000, model="rag-ollama", stream=True)
    seen = []
    with pytest.raises(openai.APIError) as failed:
        seen.extend(stream)
    assert len(seen) >= 2  # the role, then the verified sentence, before the error
    assert failed.value.body["type"] == "server_error"  # type: ignore[index]
    assert failed.value.body["code"].startswith("llm")  # type: ignore[index]


def test_abstention(env: Env) -> None:
    completion = ask(env, OFF_TOPIC)
    text = completion.choices[0].message.content
    assert text.startswith("The documents do not say")
    assert "\n\nClosest passages: " in text and "Sources:" not in text
    extra = rag_of(completion)
    assert extra["abstained"] and extra["citations"] == [] and extra["confidence"] < 0.65
    streamed = list(ask(env, OFF_TOPIC, stream=True))
    assert rag_of(streamed[-1])["abstained"]


def test_follow_up_is_rewritten_from_the_conversation(env: Env) -> None:
    first = ask(env, "How did Kim Jong Un travel to Russia?").choices[0].message.content
    messages: list[Any] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How did Kim Jong Un travel to Russia?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": [{"type": "text", "text": "What did he visit there?"}]},
    ]
    completion = env.client.chat.completions.create(model="rag", messages=messages)
    extra = rag_of(completion)
    assert extra["question"] == "What did he visit there?" and "Kim Jong Un" in extra["query"]
    assert extra["notes"][0].startswith("follow-up rewritten (key terms): ")
    # an answer about Kim Jong Un's trip to Russia (which of the two lines that tell of it the
    # reader chooses is its call: the fighter-jet line is the better answer)
    said_now = completion.choices[0].message.content.split("\n\nSources:")[0]
    assert "Kim Jong Un" in said_now and "Russia" in said_now
    said = first.split("\n\nSources:")[0]  # the same turn, as /v1/ask's history
    history = [{"question": "How did Kim Jong Un travel to Russia?", "answer": said}]
    asked = env.http.post("/v1/ask", json={"question": "What did he visit there?",
                                           "history": history})  # fmt: skip
    assert asked.status_code == 200, asked.text
    same = asked.json()
    assert (extra["query"], extra["citations"]) == (same["query"], same["citations"])
    alone = ask(env, "What did he visit there?", model="rag")
    assert rag_of(alone)["query"] is None


def test_wrong_or_missing_key(env: Env) -> None:
    for key in ("wrong-key", KEY[:-1]):
        client = openai.OpenAI(base_url=f"{env.url}/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": PUTIN_2000}]
            )
        error = refused.value.body
        assert error["type"] == "authentication_error" and error["code"] == "unauthorized"  # type: ignore[index]
        assert refused.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{env.url}/v1", api_key="wrong", max_retries=0).models.list()
    # the rest of the API keeps its own error shape
    error = httpx.post(f"{env.url}/v1/ask", json={"question": PUTIN_2000}).json()["error"]
    assert set(error) == {"code", "message", "hint"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"n": 2}, "n=2"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "json_object"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ],
)
def test_unsupported_parameters_are_refused(env: Env, params: dict[str, Any], named: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        ask(env, PUTIN_2000, **params)
    error = refused.value.body
    assert refused.value.status_code == 400 and error["type"] == "invalid_request_error"  # type: ignore[index]
    assert error["code"] == "unsupported_parameter" and named in error["message"]  # type: ignore[index]
    assert "temperature" in error["hint"]  # type: ignore[index]


def test_harmless_parameters_are_accepted(env: Env) -> None:
    harmless: dict[str, Any] = dict(
        temperature=0.2, top_p=0.9, max_tokens=64, user="u-1", seed=7, n=1, stop=["\n\n"]
    )
    completion = ask(env, PUTIN_2000, **harmless)
    assert rag_of(completion)["citations"]
    chunks = list(ask(env, PUTIN_2000, stream=True, stream_options={"include_usage": True}))
    assert rag_of(chunks[-1])["citations"]


def test_bad_requests_in_openai_shape(env: Env) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        ask(env, PUTIN_2000, model="gpt-4o")
    assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "rag-extractive" in unknown.value.body["hint"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as nobody:
        env.client.chat.completions.create(
            model="rag", messages=[{"role": "system", "content": "Be brief."}]
        )
    assert "no user message" in nobody.value.body["message"]  # type: ignore[index]
    for messages in ([], [{"role": "tool", "content": "42", "tool_call_id": "t1"}]):
        with pytest.raises(openai.UnprocessableEntityError) as invalid:
            env.client.chat.completions.create(model="rag", messages=messages)  # type: ignore[arg-type]
        assert invalid.value.body["type"] == "invalid_request_error"  # type: ignore[index]
        assert invalid.value.body["code"] == "validation_error"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as too_long:
        ask(env, "why " * 600)
    assert "at most 2000 characters" in too_long.value.body["message"]  # type: ignore[index]


def test_the_last_user_message_is_the_question(env: Env) -> None:
    trailing = env.client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": PUTIN_2000}, {"role": "assistant", "content": ""}],
    )
    assert rag_of(trailing)["question"] == PUTIN_2000 and rag_of(trailing)["citations"]
