"""Sentences with their lines and answer types, on hand-made cases."""

from __future__ import annotations

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
