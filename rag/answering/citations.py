"""From retrieved text and an answer to verified citations of exact lines.

The model sees numbered evidence, ``[1]``, ``[2]``... (whole passages, or single
sentences for small models).  It cites ``[n]`` (or ``[n:L12]``,
``[path:L12-L14]``).  Each citation is resolved to lines inside what was
retrieved, narrowed to the line that best supports the sentence, and kept only
if those lines support it (its content words and every number appear there).
A sentence without a verified citation is aligned to the retrieved line that
supports it best; a sentence nothing supports is dropped.  The model cannot
cite what was not retrieved, and cannot cite a line that does not say it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.models import Chunk, Citation, Passage
from rag.spans import chunk_lines
from rag.text import content_words, overlap, sentences

MARKER = re.compile(
    r"\[\s*(?:(?P<n>\d{1,3})|(?P<path>[^\[\]\s:]+?))"
    r"(?:\s*[:,]\s*L?(?P<a>\d+)(?:\s*-\s*L?(?P<b>\d+))?)?\s*\]"
)
SUPPORT_THRESHOLD = 0.5  # default share of a sentence's content words its lines must hold
UNSUPPORTED_MARK = "[unsupported]"


@dataclass(frozen=True)
class Evidence:
    """Numbered text shown to a model: lines ``start_line..end_line`` of a retrieved chunk."""

    chunk: Chunk
    start_line: int
    end_line: int
    text: str
    score: float

    @classmethod
    def of_passage(cls, passage: Passage) -> Evidence:
        c = passage.chunk
        return cls(c, c.start_line, c.end_line, c.text.strip(), passage.score)

    @property
    def anchor(self) -> str:
        if self.start_line == self.end_line:
            return f"{self.chunk.path}:{self.start_line}"
        return f"{self.chunk.path}:{self.start_line}-{self.end_line}"


def format_evidence(evidence: list[Evidence]) -> str:
    """Passages as a chat model sees them: a numbered anchor line, then the text."""
    return "\n\n".join(f"[{i}] {e.anchor}\n{e.text}" for i, e in enumerate(evidence, start=1))


def format_evidence_lines(evidence: list[Evidence]) -> str:
    """Sentences as a small completion model sees them: one numbered line each."""
    return "\n".join(
        f"Evidence [{i}]: {' '.join(e.text.split())}" for i, e in enumerate(evidence, start=1)
    )


def quote(chunk: Chunk, start_line: int, end_line: int) -> str:
    return "\n".join(t for n, t in chunk_lines(chunk) if start_line <= n <= end_line)


def support(claim: str, lines: str) -> float:
    """How well ``lines`` support ``claim``: 0 if a number of the claim is missing there."""
    claim_words = content_words(claim)
    line_words = content_words(lines)
    numbers = {w for w in claim_words if any(ch.isdigit() for ch in w)}
    if numbers - line_words:
        return 0.0
    return overlap(claim_words, line_words)


def best_line(chunk: Chunk, claim: str, start: int, end: int) -> tuple[int, float]:
    """The line in ``start..end`` of ``chunk`` that best supports ``claim`` (ties: earliest)."""
    best = (start, 0.0)
    for number, text in chunk_lines(chunk):
        if start <= number <= end and text.strip():
            score = support(claim, text)
            if score > best[1]:
                best = (number, score)
    return best


@dataclass(frozen=True)
class Span:
    evidence: Evidence
    line: int
    support: float


def _resolve(
    match: re.Match[str], evidence: list[Evidence], claim: str, threshold: float
) -> Span | None:
    """A marker to the supporting line it points at, or None (not retrieved / unsupported)."""
    if match.group("n") is not None:
        index = int(match.group("n")) - 1
        candidates = [evidence[index]] if 0 <= index < len(evidence) else []
    else:
        candidates = [e for e in evidence if e.chunk.path == match.group("path")]
    a, b = match.group("a"), match.group("b")
    for ev in candidates:
        lo, hi = ev.start_line, ev.end_line
        if a is not None:
            lo, hi = int(a), int(b or a)
            if not ev.start_line <= lo <= hi <= ev.end_line:
                continue  # lines outside what was retrieved
        line, score = best_line(ev.chunk, claim, lo, hi)
        if score >= threshold:
            return Span(ev, line, score)
    return None


def align(
    claim: str, evidence: list[Evidence], threshold: float = SUPPORT_THRESHOLD
) -> Span | None:
    """The retrieved line that supports ``claim`` best, if it supports it well enough."""
    best: Span | None = None
    for ev in evidence:
        line, score = best_line(ev.chunk, claim, ev.chunk.start_line, ev.chunk.end_line)
        if score >= threshold and (best is None or score > best.support):
            best = Span(ev, line, score)
    return best


def _sentences_with_markers(raw: str) -> list[tuple[str, list[re.Match[str]]]]:
    out: list[tuple[str, list[re.Match[str]]]] = []
    for sentence in sentences(raw):
        found = list(MARKER.finditer(sentence.text))
        bare = MARKER.sub("", sentence.text).strip()
        bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
        if not re.search(r"\w", bare):
            if out:  # markers alone after a sentence belong to it
                out[-1][1].extend(found)
            continue
        out.append((bare, found))
    return out


@dataclass
class CitedAnswer:
    text: str  # with [k] markers referring to citations[k-1]
    citations: list[Citation]
    dropped_sentences: int
    kept_sentences: int


def cite_answer(
    raw: str,
    evidence: list[Evidence],
    context: list[Evidence],
    threshold: float = SUPPORT_THRESHOLD,
    keep_unsupported: bool = False,
) -> CitedAnswer:
    """Resolve and verify the citations of ``raw``; ``context`` is all that was retrieved.

    Sentences nothing supports are dropped, or with ``keep_unsupported`` kept and marked
    ``[unsupported]`` (and still counted in ``dropped_sentences``).
    """
    citations: list[Citation] = []
    index_of: dict[tuple[str, int], int] = {}

    def add(span: Span) -> int:
        chunk = span.evidence.chunk
        key = (chunk.path, span.line)
        if key not in index_of:
            citations.append(
                Citation(
                    path=chunk.path,
                    start_line=span.line,
                    end_line=span.line,
                    quote=quote(chunk, span.line, span.line),
                    score=span.evidence.score,
                    support=round(span.support, 4),
                    verified=True,
                    page=chunk.page,
                    page_first_line=chunk.page_first_line,
                )
            )
            index_of[key] = len(citations)
        return index_of[key]

    parts, dropped = [], 0
    for text, markers in _sentences_with_markers(raw):
        spans = [s for m in markers if (s := _resolve(m, evidence, text, threshold)) is not None]
        if not spans and (aligned := align(text, context, threshold)) is not None:
            spans = [aligned]
        if not spans:
            dropped += 1  # nothing retrieved supports it
            if keep_unsupported:
                parts.append(f"{text} {UNSUPPORTED_MARK}")
            continue
        refs = sorted({add(s) for s in spans})
        parts.append(text + "".join(f" [{r}]" for r in refs))
    return CitedAnswer(
        " ".join(parts), citations, dropped, len(parts) - int(keep_unsupported) * dropped
    )
