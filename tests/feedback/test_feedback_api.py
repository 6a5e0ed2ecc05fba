"""POST /v1/feedback and GET /v1/feedback on a real uvicorn with an API key and a small body
limit: the key and limits the rest of the API has, bad bodies answered 4xx with a message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rag.api.app import create_app
from tests.api_support import LiveServer, error_of
from tests.conftest import make_runtime
from tests.feedback.test_feedback import BRIDGES, BRIDGES_TEXT, KESTREL, MILLS, MILLS_TEXT

KEY = "feedback-test-key-51d0"
LIMIT = 64 * 1024  # RAG_MAX_BODY_MB of this server, in bytes


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("feedback-api")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / BRIDGES).write_text(BRIDGES_TEXT)
    (corpus / MILLS).write_text(MILLS_TEXT)
    runtime = make_runtime(
        tmp, embedder, corpus=corpus, llm_backend="extractive", api_key=KEY,
        max_body_mb=LIMIT / 2**20,
    )  # fmt: skip
    runtime.ingest_service().ingest()
    with (
        LiveServer(create_app(runtime.settings, runtime)) as live,
        httpx.Client(base_url=live.url, headers={"X-API-Key": KEY}, timeout=60) as c,
    ):
        yield c


def _answer(client: httpx.Client) -> dict[str, Any]:
    r = client.post("/v1/ask", json={"question": KESTREL})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _body(answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "mark": "wrong",
        "question": answer["question"],
        "answer": answer["answer"],
        "citations": [
            {k: c[k] for k in ("path", "start_line", "end_line")} for c in answer["citations"]
        ],
        "backend": answer["backend"],
        "model": answer["model"],
        "index_version": answer["index_version"],
        **extra,
    }


def test_mark_then_add_lines_then_list(client: httpx.Client) -> None:
    answer = _answer(client)
    r = client.post("/v1/feedback", json=_body(answer))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["state"] == "needs lines" and first["origin"] == "api"
    assert first["index_version"] == answer["index_version"]
    lines = [{"path": BRIDGES, "start_line": 2, "end_line": 3}]
    r = client.post("/v1/feedback", json=_body(answer, lines=lines, id=first["id"]))
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["id"] == first["id"] and again["state"] == "ready"
    assert again["lines"][0]["text"] == BRIDGES_TEXT.splitlines()[1:3]
    listed = client.get("/v1/feedback", params={"limit": 5}).json()
    assert listed["feedback"][0]["id"] == first["id"] and listed["ready"] >= 1
    assert listed["count"] == len(listed["feedback"]) <= 5


def test_same_key_as_the_api(client: httpx.Client) -> None:
    url = str(client.base_url)
    for r in (
        httpx.get(f"{url}/v1/feedback"),
        httpx.post(f"{url}/v1/feedback", json={"mark": "right", "question": "q"}),
        httpx.get(f"{url}/v1/feedback", headers={"X-API-Key": "nope"}),
    ):
        assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/v1/feedback"]["post"]
    assert post["security"] and "201" in post["responses"] and "422" in post["responses"]
    assert "get" in schema["paths"]["/v1/feedback"]


def test_same_body_limit_as_the_api(client: httpx.Client) -> None:
    big = {"mark": "right", "question": "q", "answer": "x" * (2 * LIMIT)}
    r = client.post("/v1/feedback", json=big)
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"question": KESTREL}, 422, "mark: Field required"),
        ({"mark": "meh", "question": KESTREL}, 422, "mark: Input should be 'right'"),
        ({"mark": "right", "question": "   "}, 422, "question: String should match"),
        ({"mark": "right", "question": "q", "secret": 1}, 422, "secret: Extra inputs"),
        (
            {"mark": "wrong", "question": "q",
             "lines": [{"path": BRIDGES, "start_line": 3, "end_line": 2}]},
            400, "lines[0]: bridges.txt:L3-L2: end_line must not be before start_line",
        ),
        (
            {"mark": "wrong", "question": "q",
             "lines": [{"path": "../etc/passwd", "start_line": 1, "end_line": 1}]},
            404, "lines[0].path: '../etc/passwd' is not a document of the index",
        ),
        (
            {"mark": "wrong", "question": "q",
             "lines": [{"path": MILLS, "start_line": 1, "end_line": 40}]},
            400, "is past the end of mills.txt (2 lines)",
        ),
        ({"mark": "right", "question": "q", "id": 424242}, 404, "no feedback record 424242"),
    ],
)  # fmt: skip
def test_bad_bodies_are_4xx_with_a_message(
    client: httpx.Client, body: dict[str, Any], status: int, says: str
) -> None:
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == status, r.text
    assert says in error_of(r)["message"]


def test_not_json_and_bad_limit(client: httpx.Client) -> None:
    r = client.post(
        "/v1/feedback", content=b'{"mark": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "bad_request"
    r = client.get("/v1/feedback", params={"limit": 0})
    assert r.status_code == 422 and "limit" in error_of(r)["message"]
