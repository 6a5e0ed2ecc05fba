"""GET /v1/lines (a document's numbered lines around a citation), follow-ups with ``history``
on POST /v1/ask, and the page's own routes, on a real uvicorn with an API key.

The corpus holds data/corpus, a PDF, a folder, a link inside the corpus and a link out of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.answering.conversation import Conversation, history_turn
from rag.api.app import create_app
from rag.api.lines import MAX_SPAN
from rag.prompts import DEFAULT_PROMPTS_DIR
from tests.api_support import LiveServer, copy_corpus, error_of
from tests.conftest import PUTIN_2000, PUTIN_2000_LINES, make_runtime, sed_lines
from tests.indexing.test_formats import PAGES, make_pdf

KEY = "lines-test-key"
AUTH = {"X-API-Key": KEY}


class Api:
    def __init__(self, url: str, home: Path) -> None:
        self.client = httpx.Client(base_url=url, headers=AUTH, timeout=60)
        self.url = url
        self.corpus = home / "corpus"

    def lines(self, path: str, start: int | str, **more: Any) -> httpx.Response:
        return self.client.get("/v1/lines", params={"path": path, "start": start, **more})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("lines")
    corpus = copy_corpus(home / "corpus")
    outside = home / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The launch code is 0000.\n")
    (corpus / "report.pdf").write_bytes(make_pdf(PAGES))
    (corpus / "notes").mkdir()
    (corpus / "notes" / "a.txt").write_text("first\r\nsecond\r\nthird\n")
    (corpus / "notes" / "inside-link.txt").symlink_to(corpus / "notes" / "a.txt")
    (corpus / "escape.txt").symlink_to(outside / "secret.txt")  # a link out of the roots
    runtime = make_runtime(home, embedder, corpus, llm_backend="extractive", api_key=KEY)
    runtime.ingest_service().ingest()
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        yield Api(live.url, home)


def _ask(api: Api, question: str, history: list[dict[str, str]] | None = None) -> Any:
    body: dict[str, Any] = {"question": question}
    if history is not None:
        body["history"] = history
    response = api.client.post("/v1/ask", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_citation_lines_come_with_their_numbers_and_context(api: Api) -> None:
    answer = _ask(api, PUTIN_2000)
    cited = answer["citations"][0]
    assert (cited["path"], cited["start_line"]) in PUTIN_2000_LINES
    got = api.lines(cited["path"], cited["start_line"], end=cited["end_line"], radius=3)
    assert got.status_code == 200, got.text
    body = got.json()
    on_disk = sed_lines(api.corpus / cited["path"])
    first = max(1, cited["start_line"] - 3)
    last = min(len(on_disk), cited["end_line"] + 3)
    assert [line["number"] for line in body["lines"]] == list(range(first, last + 1))
    assert [line["text"] for line in body["lines"]] == on_disk[first - 1 : last]
    assert (body["start"], body["end"], body["total"]) == (
        cited["start_line"],
        cited["end_line"],
        len(on_disk),
    )
    shown = {line["number"]: line["text"] for line in body["lines"]}
    quoted = [shown[n] for n in range(cited["start_line"], cited["end_line"] + 1)]
    assert "\n".join(quoted) == cited["quote"]
    assert body["indexed"] is True and body["changed"] is False


def test_lines_without_end_or_radius_and_past_the_last_line(api: Api) -> None:
    body = api.lines("notes/a.txt", 2).json()
    assert [(x["number"], x["text"]) for x in body["lines"]] == [(2, "second")]  # no \r
    body = api.lines("notes/a.txt", 2, end=9, radius=5).json()  # end is cut to the last line
    assert body["end"] == 3 and [x["number"] for x in body["lines"]] == [1, 2, 3]
    linked = api.lines("notes/inside-link.txt", 1).json()  # a link inside the corpus: fine
    assert linked["lines"][0]["text"] == "first"


def test_pdf_lines_carry_page_and_page_line(api: Api) -> None:
    body = api.lines("report.pdf", 4, end=5, radius=1).json()
    assert body["pages"] == 3
    assert [(x["number"], x["page"], x["page_line"], x["text"]) for x in body["lines"]] == [
        (3, 1, 3, PAGES[0][2]),
        (4, 2, 1, PAGES[1][0]),
        (5, 2, 2, PAGES[1][1]),
        (6, 2, 3, PAGES[1][2]),
    ]


def test_a_changed_file_is_flagged(api: Api) -> None:
    path = api.corpus / "notes" / "a.txt"
    before = path.read_bytes()
    try:
        path.write_text("first\nsecond, edited\nthird\n")
        body = api.lines("notes/a.txt", 2).json()
        assert body["changed"] is True and body["lines"][0]["text"] == "second, edited"
    finally:
        path.write_bytes(before)


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "notes/../../outside/secret.txt",
        "%2e%2e/outside/secret.txt",
        "%252e%252e/outside/secret.txt",
        "..\\outside\\secret.txt",
        "/etc/passwd",
        "escape.txt",  # a link to a file outside the roots
    ],
)
def test_paths_outside_the_corpus_are_refused(api: Api, path: str) -> None:
    got = api.lines(path, 1)
    assert got.status_code == 403, got.text
    assert error_of(got)["code"] == "path_not_allowed"
    assert "launch code" not in got.text and "root:" not in got.text


def test_an_absolute_path_inside_the_corpus_is_refused_too(api: Api) -> None:
    got = api.lines(str(api.corpus / "notes" / "a.txt"), 1)
    assert got.status_code == 403 and error_of(got)["code"] == "path_not_allowed"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"path": "missing.txt", "start": 1}, 404, "path_not_found"),
        ({"path": "notes", "start": 1}, 404, "path_not_found"),  # a folder
        ({"path": "notes/a.txt", "start": 3, "end": 2}, 400, "bad_line_range"),
        ({"path": "notes/a.txt", "start": 4}, 400, "bad_line_range"),
        ({"path": "notes/a.txt", "start": 1, "end": MAX_SPAN + 1}, 400, "bad_line_range"),
        ({"path": "notes/a.txt", "start": 0}, 422, "validation_error"),
        ({"path": "notes/a.txt", "start": "two"}, 422, "validation_error"),
        ({"path": "notes/a.txt", "start": 1, "radius": 10_000}, 422, "validation_error"),
        ({"path": "notes/a.txt"}, 422, "validation_error"),
        ({"path": "", "start": 1}, 422, "validation_error"),
        ({"path": "notes/a.txt\x00", "start": 1}, 422, "validation_error"),
    ],
)
def test_bad_requests_get_clear_errors(
    api: Api, params: dict[str, Any], status: int, code: str
) -> None:
    got = api.client.get("/v1/lines", params=params)
    assert got.status_code == status, got.text
    error = error_of(got)
    assert error["code"] == code and error["message"]


def test_lines_need_the_api_key(api: Api) -> None:
    got = httpx.get(f"{api.url}/v1/lines", params={"path": "notes/a.txt", "start": 1})
    assert got.status_code == 401 and error_of(got)["code"] == "unauthorized"


def test_follow_up_is_rewritten_from_history_like_rag_chat(api: Api) -> None:
    first = _ask(api, PUTIN_2000)
    second = _ask(
        api, "Who is Yuri Ushakov?", [{"question": PUTIN_2000, "answer": first["answer"]}]
    )
    assert second["query"] is None  # not a follow-up: answered as asked
    history = [
        {"question": PUTIN_2000, "answer": first["answer"]},
        {"question": "Who is Yuri Ushakov?", "answer": second["answer"]},
    ]
    third = _ask(api, "What did he say?", history)
    turns = [history_turn(t["question"], t["answer"]) for t in history]
    expected = Conversation(turns).rewrite("What did he say?", None, DEFAULT_PROMPTS_DIR)
    assert third["query"] == expected.query == "What did he say? (Yuri Ushakov, Putin)"
    assert third["question"] == "What did he say?"
    assert "ushakov" in third["answer"].split("[1]")[0].lower()  # one article: "Yuri ushakov"
    assert third["notes"][0].startswith("follow-up rewritten (key terms)")
    alone = _ask(api, "What did he say?")  # without the history: not rewritten
    assert alone["query"] is None and alone["question"] == "What did he say?"


@pytest.mark.parametrize(
    "history",
    [
        [{"question": PUTIN_2000, "answer": "x"}] * 21,  # too many turns
        [{"question": "  ", "answer": "x"}],  # a blank question
        [{"question": PUTIN_2000, "said": "x"}],  # an unknown field
        [{"question": PUTIN_2000, "answer": "x" * 8001}],
    ],
)
def test_bad_history_is_refused_by_name(api: Api, history: list[dict[str, str]]) -> None:
    got = api.client.post("/v1/ask", json={"question": "What did he say?", "history": history})
    assert got.status_code == 422, got.text
    error = error_of(got)
    assert error["code"] == "validation_error" and "history" in error["message"]


def test_the_page_and_its_files_need_no_key_and_carry_a_strict_csp(api: Api) -> None:
    page = httpx.get(f"{api.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert '<script src="/static/app.js"' in page.text and "<script>" not in page.text
    assert " style=" not in page.text and "<style" not in page.text  # no inline styles
    for name, media in [("app.js", "text/javascript"), ("app.css", "text/css")]:
        got = httpx.get(f"{api.url}/static/{name}")
        assert got.status_code == 200 and got.headers["content-type"].startswith(media)
        assert "innerHTML" not in got.text and "http://" not in got.text
    for name in ["%2e%2e/app.py", "..%2fapp.py", "index.html.bak", "lines.py"]:
        got = httpx.get(f"{api.url}/static/{name}")
        assert got.status_code == 404, name
