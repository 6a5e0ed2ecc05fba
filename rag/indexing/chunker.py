"""Line-aware chunking.

A chunk is a run of whole lines of one file (``start_line..end_line``, 1-based,
inclusive), never more tokens than the embedding model reads, so no text is
silently truncated out of retrieval.  A line longer than the budget is split
into pieces that keep the line's number.  Only ``\\n`` ends a line (as for
``sed``); a ``\\r`` before it is part of the line ending, not of the text.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.indexing.formats.markdown import SEPARATOR, heading_trail
from rag.models import Chunk

CHUNKER_VERSION = "lines-v2"  # v2: heading context (Markdown, rST), page breaks (PDF)


class TokenCounter(Protocol):
    """What the chunker needs from a tokenizer."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without special tokens."""
        ...

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Character spans of consecutive pieces of ``text`` of at most ``max_tokens``."""
        ...


@dataclass(frozen=True)
class Line:
    number: int
    start: int  # offset of the first character in the text
    end: int  # offset just past the last character, line ending excluded
    text: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def split_lines(text: str) -> list[Line]:
    """The lines of ``text`` as ``sed`` numbers them (``\\n`` ends a line)."""
    lines = []
    pos = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        content = raw[:-1] if raw.endswith("\r") else raw
        lines.append(Line(number, pos, pos + len(content), content))
        pos += len(raw) + 1
    if lines and lines[-1].text == "" and text.endswith("\n"):
        lines.pop()  # the empty "line" after a final newline does not exist
    return lines


def chunk_id(path: str, text: str, occurrence: int) -> str:
    """Stable id: the file path and the chunk's content (plus which repeat of it)."""
    path_hash = hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]
    text_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{path_hash}-{text_hash}-{occurrence}"


@dataclass(frozen=True)
class _Doc:
    """One text being chunked: its lines, the heading path and page of each line."""

    path: str
    lines: list[Line]
    headings: list[str] | None  # fitted heading path per line (index: number - 1)
    heading_cost: dict[str, int]  # tokens of each heading path
    page_starts: tuple[int, ...]

    def heading(self, number: int) -> str:
        return self.headings[number - 1] if self.headings else ""

    def cost(self, number: int) -> int:
        """Tokens the heading path at line ``number`` adds to a chunk starting there."""
        return self.heading_cost.get(self.heading(number), 0)

    def page(self, number: int) -> tuple[int | None, int | None]:
        """(page, its first line) of line ``number``; (None, None) for unpaged text."""
        index = bisect.bisect_right(self.page_starts, number)
        if index == 0:
            return None, None
        return index, self.page_starts[index - 1]

    def chunk(self, start_line: int, end_line: int, start: int, end: int, text: str) -> Chunk:
        page, page_first_line = self.page(start_line)
        return Chunk(
            id="",
            path=self.path,
            start_line=start_line,
            end_line=end_line,
            start_char=start,
            end_char=end,
            text=text,
            heading=self.heading(start_line),
            page=page,
            page_first_line=page_first_line,
        )

    def span(self, first: Line, last: Line) -> Chunk:
        body = "\n".join(x.text for x in self.lines[first.number - 1 : last.number])
        return self.chunk(first.number, last.number, first.start, last.end, body)


class Chunker:
    """Packs lines into chunks of at most ``max_tokens`` tokens (and ``12 * max_tokens`` chars).

    A chunk of Markdown or reStructuredText carries the heading path in effect at its first
    line (``Chunk.heading``, cut to a quarter of the budget); the budget counts it, since it
    is embedded with the text.  ``page_starts`` (PDF): a page start always begins a chunk.
    """

    def __init__(self, counter: TokenCounter, max_tokens: int, overlap_lines: int = 0) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_lines = overlap_lines
        # A cap on characters too, so a line of one giant "word" (one [UNK]) stays small.
        self.max_chars = max_tokens * 12

    def chunk(self, path: str, text: str, page_starts: Sequence[int] | None = None) -> list[Chunk]:
        """Chunks of ``text`` (the decoded file at ``path``), in file order, with stable ids.

        ``page_starts``: the 1-based line where each page begins (strictly increasing).
        """
        lines = split_lines(text)
        starts = tuple(page_starts or ())
        if any(b <= a for a, b in itertools.pairwise(starts)) or (starts and starts[0] < 1):
            raise ValueError("page_starts must be positive and strictly increasing")
        doc = self._doc(path, lines, starts)
        content = [line for line in lines if not line.blank]
        counts = self.counter.count([line.text for line in content]) if content else []
        cost = {line.number: n for line, n in zip(content, counts, strict=True)}
        chunks: list[Chunk] = []
        current: list[Line] = []

        def fits(run: list[Line], line: Line) -> bool:
            if doc.page(run[0].number) != doc.page(line.number):
                return False  # a chunk never spans two pages
            tokens = sum(cost[x.number] for x in run) + cost[line.number] + doc.cost(run[0].number)
            return tokens <= self.max_tokens and line.end - run[0].start <= self.max_chars

        for line in content:
            budget = self.max_tokens - doc.cost(line.number)
            if cost[line.number] > budget or len(line.text) > self.max_chars:
                if current:
                    chunks.append(doc.span(current[0], current[-1]))
                current = []
                chunks.extend(self._pieces(doc, line, budget))
                continue
            if current and not fits(current, line):
                chunks.append(doc.span(current[0], current[-1]))
                same_page = doc.page(current[0].number) == doc.page(line.number)
                current = current[-self.overlap_lines :] if self.overlap_lines and same_page else []
                while current and not fits(current, line):
                    current.pop(0)
            current.append(line)
        if current:
            chunks.append(doc.span(current[0], current[-1]))
        return _assign_ids(path, self._enforce_limit(doc, chunks))

    def _doc(self, path: str, lines: list[Line], starts: tuple[int, ...]) -> _Doc:
        trail = heading_trail(path, [line.text for line in lines])
        if not trail:
            return _Doc(path, lines, None, {}, starts)
        limit = self.max_tokens // 4
        distinct = sorted({h for h in trail if h})
        fitted = dict(zip(distinct, self._fit_headings(distinct, limit), strict=True))
        kept = sorted({h for h in fitted.values() if h})
        costs = dict(zip(kept, self.counter.count(kept), strict=True)) if kept else {}
        return _Doc(path, lines, [fitted.get(h, "") for h in trail], costs, starts)

    def _fit_headings(self, headings: list[str], limit: int) -> list[str]:
        """Each heading path cut to at most ``limit`` tokens: outer headings go first."""
        if not headings or limit < 1:
            return ["" for _ in headings]
        out = []
        for heading, n in zip(headings, self.counter.count(headings), strict=True):
            parts = heading.split(SEPARATOR)
            while n > limit and len(parts) > 1:
                parts = parts[1:]
                heading = SEPARATOR.join(parts)
                n = self.counter.count([heading])[0]
            if n > limit:
                pieces = self.counter.split(heading, limit)
                heading = heading[pieces[0][0] : pieces[0][1]].strip() if pieces else ""
            out.append(heading)
        return out

    def _pieces(self, doc: _Doc, line: Line, budget: int) -> list[Chunk]:
        """Split one long line into pieces that keep its line number."""
        out = []
        for start, end in self.counter.split(line.text, max(1, budget)):
            while end - start > self.max_chars:
                out.append((start, start + self.max_chars))
                start += self.max_chars
            out.append((start, end))
        return [
            doc.chunk(line.number, line.number, line.start + s, line.start + e, line.text[s:e])
            for s, e in out
            if line.text[s:e].strip()
        ]

    def _enforce_limit(self, doc: _Doc, chunks: list[Chunk]) -> list[Chunk]:
        """Re-split chunks a tokenizer counts as too long once joined (non-additive tokenizers).

        What is counted is what is embedded: the heading path and the text.
        """
        if not chunks:
            return chunks
        counts = self.counter.count([c.embed_text for c in chunks])
        if all(n <= self.max_tokens for n in counts):
            return chunks
        fixed: list[Chunk] = []
        for chunk, n in zip(chunks, counts, strict=True):
            if n <= self.max_tokens:
                fixed.append(chunk)
                continue
            if len(chunk.text) <= 1:  # nothing left to split: drop the context instead
                fixed.append(chunk.model_copy(update={"heading": ""}))
                continue
            if chunk.start_line < chunk.end_line:
                run = [x for x in doc.lines[chunk.start_line - 1 : chunk.end_line] if not x.blank]
                mid = (len(run) + 1) // 2
                halves = [doc.span(part[0], part[-1]) for part in (run[:mid], run[mid:])]
            else:
                sub = Line(chunk.start_line, chunk.start_char, chunk.end_char, chunk.text)
                budget = self.max_tokens - doc.cost(sub.number)
                halves = self._pieces(doc, sub, max(1, budget * 9 // 10))
                if len(halves) == 1 and halves[0].text == chunk.text:  # split disagrees with count
                    cut = len(chunk.text) // 2
                    halves = [
                        doc.chunk(sub.number, sub.number, sub.start + s, sub.start + e, piece)
                        for s, e in ((0, cut), (cut, len(chunk.text)))
                        if (piece := chunk.text[s:e]).strip()
                    ]
            fixed.extend(self._enforce_limit(doc, halves))
        return fixed


def _assign_ids(path: str, chunks: list[Chunk]) -> list[Chunk]:
    """Ids from what is embedded (heading and text): a renamed heading means a new vector."""
    seen: dict[str, int] = {}
    out = []
    for chunk in chunks:
        content = chunk.embed_text
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        out.append(chunk.model_copy(update={"id": chunk_id(path, content, occurrence)}))
    return out
