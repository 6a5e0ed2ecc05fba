"""The feedback service over a real index: marks pinned to content, their states, the golden
rows they become, stale rows after an edit, and bad marks refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.errors import DocumentNotFoundError, FeedbackNotFoundError, LineRangeError
from rag.evaluation.golden import load_golden
from rag.feedback.export import export, golden_row
from rag.feedback.marking import FeedbackService
from rag.feedback.records import FeedbackIn, LineRange
from rag.feedback.store import FILE_NAME
from rag.runtime import Runtime
from tests.conftest import make_runtime

BRIDGES = "bridges.txt"
BRIDGES_TEXT = (
    "# Bridges of the Arun\n"
    "The Kestrel Bridge over the Arun river opened to traffic in March 1931.\n"
    "It was built of grey local stone by the Weller brothers.\n"
    "The Heron footbridge, upstream, opened in 1962.\n"
)
MILLS = "mills.txt"
MILLS_TEXT = "The Arun tide mill ground corn until 1934.\nIts wheel was of oak.\n"
KESTREL = "When did the Kestrel Bridge open to traffic?"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Runtime:
    tmp = tmp_path_factory.mktemp("feedback")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / BRIDGES).write_text(BRIDGES_TEXT)
    (corpus / MILLS).write_text(MILLS_TEXT)
    runtime = make_runtime(tmp, embedder, corpus=corpus, llm_backend="extractive")
    runtime.ingest_service().ingest()
    return runtime


@pytest.fixture
def service(runtime: Runtime) -> FeedbackService:
    return FeedbackService(runtime.settings)


def _mark(runtime: Runtime, mark: str, question: str = KESTREL, **extra: Any) -> FeedbackIn:
    """The answer rag gives now, marked."""
    answer = runtime.answer_service.ask(question)
    return FeedbackIn(
        mark=mark,  # type: ignore[arg-type]
        question=question,
        answer=answer.answer,
        abstained=answer.abstained,
        citations=[
            LineRange(path=c.path, start_line=c.start_line, end_line=c.end_line)
            for c in answer.citations
        ],
        backend=answer.backend,
        model=answer.model,
        **extra,
    )


def _range(path: str, start: int, end: int | None = None) -> LineRange:
    return LineRange(path=path, start_line=start, end_line=end or start)


def test_a_wrong_answer_with_the_right_lines_becomes_a_golden_row(
    runtime: Runtime, service: FeedbackService, tmp_path: Path
) -> None:
    body = _mark(runtime, "wrong", lines=[_range(BRIDGES, 2)], expected="March 1931")
    record = service.record(body, "api")
    assert record.state == "ready" and record.origin == "api"
    assert (runtime.settings.index_dir / FILE_NAME).is_file()  # beside the index
    assert record.citations and record.citations[0].path == BRIDGES
    assert record.lines[0].text == [BRIDGES_TEXT.splitlines()[1]]  # the text, kept
    assert set(record.files) == {BRIDGES} and len(record.files[BRIDGES] or "") == 64
    assert record.backend == "extractive" and len(record.reader_version or "") == 12
    assert record.index_version and len(record.index_version) == 12
    row = golden_row(record)
    assert row is not None
    assert row["question"] == KESTREL and row["answerable"] is True
    assert row["answers"] == ["March 1931"]
    assert row["evidence"] == [{"file": BRIDGES, "start_line": 2, "end_line": 2}]
    assert row["origin"] == "feedback" and row["id"].startswith(f"fb-{record.id:04d}-")
    out = tmp_path / "feedback.jsonl"
    out.write_text('{"id": "hand-1", "question": "q", "answers": [], "answerable": false}\n')
    done = export([record], out)
    assert (done.added, done.kept, done.skipped) == (1, 1, [])
    golden = load_golden(out)  # the schema `rag eval` reads
    assert [q.id for q in golden] == ["hand-1", row["id"]] and golden[1].origin == "feedback"
    again = export([record], out)  # exporting twice replaces, never duplicates
    assert (again.added, again.replaced, again.kept) == (0, 1, 1)
    assert len(out.read_text().splitlines()) == 2
    empty = tmp_path / "none.jsonl"
    assert export([], empty).written == 0 and not empty.exists()  # `rag eval` refuses empty ones


def test_marks_right_unanswerable_and_lines_missing(
    runtime: Runtime, service: FeedbackService
) -> None:
    right = service.record(_mark(runtime, "right"), "page")
    row = golden_row(right)
    assert row is not None and row["answers"] == []  # judged on its citation
    assert row["evidence"] == [
        {"file": c.path, "start_line": c.start_line, "end_line": c.end_line}
        for c in right.citations
    ]
    cited = right.citations[0]
    doubted = service.record(
        _mark(runtime, "right", unsupported=[_range(cited.path, cited.start_line)]), "page"
    )
    assert golden_row(doubted) is None  # its only citation was said not to support it
    nothing = service.record(_mark(runtime, "unanswerable", "Who painted the Heron?"), "chat")
    row = golden_row(nothing)
    assert row is not None and row["answerable"] is False and row["evidence"] == []
    bare = service.record(_mark(runtime, "wrong"), "chat")
    assert bare.state == "needs lines" and golden_row(bare) is None
    assert "right lines" in bare.problems[0]
    fixed = service.record(_mark(runtime, "wrong", lines=[_range(BRIDGES, 2)], id=bare.id))
    assert fixed.id == bare.id and fixed.state == "ready" and fixed.created_at == bare.created_at
    listing = service.listing()
    assert listing.count >= 4 and listing.feedback[0].id > listing.feedback[-1].id  # newest first


def test_an_edited_file_makes_its_rows_stale_and_keeps_the_old_lines(
    runtime: Runtime, service: FeedbackService, tmp_path: Path
) -> None:
    record = service.record(_mark(runtime, "wrong", "Of what was the mill's wheel made?",
                                  lines=[_range(MILLS, 2)]), "page")  # fmt: skip
    assert record.state == "ready"
    out = tmp_path / "feedback.jsonl"
    assert export([record], out).added == 1
    mills = runtime.settings.corpus_dir / MILLS
    mills.write_text("A note on the mill.\n" + MILLS_TEXT)  # every line moves down one
    try:
        stale = next(r for r in service.records() if r.id == record.id)
        assert stale.state == "stale" and stale.problems == [f"{MILLS} changed since it was marked"]
        assert stale.lines[0].text == ["Its wheel was of oak."]  # what it said, to find it again
        assert golden_row(stale) is None
        done = export(service.records(), out)  # its row is taken out, and said so
        assert done.removed == [golden_row(record)["id"]]  # type: ignore[index]
        assert any(f"#{record.id} (stale)" in line for line in done.lines(out))
        assert all(json.loads(x)["feedback_id"] != record.id for x in out.read_text().splitlines())
        # Marked again with the lines where they are now: ready, pinned to the new content.
        # (the index still holds the old version: lines are read from the file itself)
        again = service.record(_mark(runtime, "wrong", lines=[_range(MILLS, 3)], id=record.id))
        assert again.state == "ready" and again.lines[0].text == ["Its wheel was of oak."]
        mills.unlink()
        gone = next(r for r in service.records() if r.id == record.id)
        assert gone.state == "stale" and gone.problems == [f"{MILLS} is gone"]
    finally:
        mills.write_text(MILLS_TEXT)


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        ({"lines": [_range("nowhere.txt", 1)]}, DocumentNotFoundError, "'nowhere.txt' is not"),
        ({"lines": [_range(BRIDGES, 3, 2)]}, LineRangeError, "end_line must not be before"),
        ({"lines": [_range(BRIDGES, 1, 300)]}, LineRangeError, "at most 200 lines"),
        ({"lines": [_range(BRIDGES, 3, 9)]}, LineRangeError, "past the end of bridges.txt (4"),
        ({"id": 99999}, FeedbackNotFoundError, "no feedback record 99999"),
    ],
)
def test_bad_marks_are_clear_errors(
    runtime: Runtime, service: FeedbackService, change: dict[str, Any], error: type, says: str
) -> None:
    body = FeedbackIn(mark="wrong", question=KESTREL, answer="x", **change)
    with pytest.raises(error) as raised:
        service.record(body)
    assert says in raised.value.message
