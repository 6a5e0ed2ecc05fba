"""Sentences with their lines, answer types, and confidence, on hand-made cases."""

from __future__ import annotations

from rag.answering.answer import Candidate, confidence
from rag.answering.answer_type import answer_type, answer_type_match
from rag.models import Chunk
from rag.spans import sentence_spans


def _chunk(lines: list[str], start: int = 1) -> Chunk:
    text = "\n".join(lines)
    return Chunk(id="c", path="a.txt", start_line=start, end_line=start + len(lines) - 1,
                 start_char=0, end_char=len(text), text=text)


def test_wrapped_sentences_keep_every_line_they_span() -> None:
    wrapped = [
        "The Normans were the people who in the 10th and 11th centuries gave their name to",
        "Normandy, a region in France. They were descended from Norse raiders and pirates",
        "from Denmark, Iceland and Norway.",
    ]
    spans = sentence_spans(_chunk(wrapped, start=7))
    assert [(s.start_line, s.end_line) for s in spans] == [(7, 8), (8, 9)]
    assert spans[0].text.endswith("gave their name to Normandy, a region in France.")


def test_one_paragraph_per_line_ends_sentences_at_line_ends() -> None:
    lines = [
        "Putin and Kim Jong Un’s discussion topics",
        "Putin’s foreign policy adviser, Yuri Ushakov, previously indicated that the leaders "
        "might negotiate a partnership agreement encompassing security issues. It would not "
        "target any other nation.",
        "",
        "Also Read",
    ]
    spans = sentence_spans(_chunk(lines, start=6))
    assert [(s.start_line, s.end_line) for s in spans] == [(6, 6), (7, 7), (7, 7), (9, 9)]
    assert spans[0].text == "Putin and Kim Jong Un’s discussion topics"


def test_answer_types() -> None:
    assert answer_type("When did Putin last visit?") == "time"
    assert answer_type("How many containers were shipped?") == "number"
    assert answer_type("Who accompanied Putin?") == "name"
    assert answer_type("What did Kirby say?") is None
    assert answer_type_match("time", "It was in July 2000.", "When?") == 1.0
    assert answer_type_match("time", "He visited last September.", "When?") == 0.5
    assert answer_type_match("time", "He visited recently.", "When?") == 0.0
    assert answer_type_match("number", "About 6,700 containers.", "How many?") == 1.0
    q = "Who greeted Putin?"
    assert answer_type_match("name", "He was greeted by Kim Jong Un.", q) == 1.0
    assert answer_type_match("name", "Putin was greeted warmly.", q) == 0.0


def _candidate(similarity: float) -> Candidate:
    chunk = _chunk(["x"])
    from rag.models import Passage

    return Candidate(Passage(chunk=chunk, score=0.5), 1, 1, "x", 1.0, similarity)


def test_confidence_rises_with_retrieval_similarity_and_stays_in_range() -> None:
    low = confidence(0.1, [_candidate(0.1)])
    mid = confidence(0.5, [_candidate(0.5)])
    high = confidence(0.9, [_candidate(0.9)])
    assert 0.0 < low < mid < high < 1.0
    assert confidence(0.9, []) == 0.0
    assert confidence(0.5, [_candidate(0.9)]) > confidence(0.5, [_candidate(0.2)])
