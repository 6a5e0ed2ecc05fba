"""Sentences of retrieved passages with the lines they span, and their scores as answers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.models import Chunk
from rag.services.citations import chunk_lines
from rag.services.text import sentences

WRAP_RATIO = 0.75  # a line this close to its block's longest line was wrapped, not ended
WRAP_MAX = 200  # paragraphs written one per line are longer than any wrap width


@dataclass(frozen=True)
class SentenceSpan:
    start_line: int
    end_line: int
    text: str
    start_char: int = 0  # where the sentence starts and ends in the chunk's text
    end_char: int = 0


def _blocks(chunk: Chunk) -> list[list[tuple[int, str]]]:
    """Runs of consecutive non-blank lines."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, text in chunk_lines(chunk):
        if text.strip():
            blocks[-1].append((number, text))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def sentence_spans(chunk: Chunk) -> list[SentenceSpan]:
    """The chunk's sentences; a sentence wrapped over several lines spans them all.

    A line break is a soft wrap when the line is nearly as long as the longest line of
    its block and that is no longer than a wrap width (text wrapped at ~80-120
    columns); otherwise (one paragraph or heading per line) it ends a sentence.
    """
    spans: list[SentenceSpan] = []
    line_at = _line_offsets(chunk)
    for block in _blocks(chunk):
        longest = max(len(t) for _, t in block)
        wrapped = longest <= WRAP_MAX
        pieces: list[list[tuple[int, str]]] = [[]]
        for number, text in block:
            pieces[-1].append((number, text))
            if not (wrapped and len(text) >= WRAP_RATIO * longest):
                pieces.append([])  # a hard line end
        for piece in (p for p in pieces if p):
            joined = ""
            starts: list[tuple[int, int, int]] = []  # (offset in joined, line, offset in chunk)
            for number, text in piece:
                if joined:
                    joined += " "
                lead = len(text) - len(text.lstrip())
                starts.append((len(joined), number, line_at.get(number, 0) + lead))
                joined += text.strip()
            for s in sentences(joined):
                first = max(i for i, (offset, _, _) in enumerate(starts) if offset <= s.start)
                last = max(i for i, (offset, _, _) in enumerate(starts) if offset < s.end)
                start_char = starts[first][2] + s.start - starts[first][0]
                end_char = starts[last][2] + s.end - starts[last][0]
                spans.append(
                    SentenceSpan(starts[first][1], starts[last][1], s.text, start_char, end_char)
                )
    return spans


def context_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """Where the chunk's sentences are in the text that is embedded for it (its
    ``embed_text``: the heading, if any, comes first)."""
    shift = len(chunk.heading) + 1 if chunk.heading else 0
    return [(s.start_char + shift, s.end_char + shift) for s in sentence_spans(chunk)]


def _line_offsets(chunk: Chunk) -> dict[int, int]:
    """Where each line of the chunk starts in its text."""
    out, offset = {}, 0
    for number, text in chunk_lines(chunk):
        out[number] = offset
        offset += len(text) + 1
    return out


_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
# A time an answer can name: a year, a day of a month, a century (a bare month is weaker).
_TIME = re.compile(
    rf"\b(1\d{{3}}|20\d{{2}})s?\b|\b\d{{1,2}}(st|nd|rd|th)? century\b"
    rf"|\b({_MONTHS})\s+\d{{1,2}}\b|\b\d{{1,2}}\s+({_MONTHS})\b",
    re.I,
)
_MONTH = re.compile(rf"\b({_MONTHS})\b", re.I)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|dozen|half)\b",
    re.I,
)
_NAME = re.compile(r"\b[A-Z][a-z]+")
_QUESTION_TYPES = [
    ("time", re.compile(r"\b(when|what year|which year|what date|what century|what decade)\b")),
    (
        "number",
        re.compile(
            r"\b(how many|how much|how long|how far|how old|how large|how big|how tall|"
            r"how high|what percentage|what percent)\b"
        ),
    ),
    ("name", re.compile(r"\b(who|whom|whose|where)\b")),
]


def answer_type(question: str) -> str | None:
    """What kind of answer the question asks for: time, number, name, or None."""
    lowered = question.lower()
    return next((kind for kind, pattern in _QUESTION_TYPES if pattern.search(lowered)), None)


def answer_type_match(kind: str | None, sentence: str, question: str) -> float:
    """How clearly ``sentence`` holds something of the asked kind: 1, 0.5 (a bare month for
    "when") or 0; names must be ones the question does not already use."""
    if kind == "time":
        return 1.0 if _TIME.search(sentence) else 0.5 if _MONTH.search(sentence) else 0.0
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    if kind == "name":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        names = _NAME.findall(sentence[1:])  # a capital at the very start proves nothing
        return 1.0 if any(n.lower() not in asked for n in names) else 0.0
    return 0.0
