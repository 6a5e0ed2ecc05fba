"""Line-aware chunking.

A chunk is a run of whole lines of one file (``start_line..end_line``, 1-based,
inclusive), never more tokens than the embedding model reads, so no text is
silently truncated out of retrieval.  A line longer than the budget is split
into pieces that keep the line's number.  Only ``\\n`` ends a line (as for
``sed``); a ``\\r`` before it is part of the line ending, not of the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.models import Chunk

CHUNKER_VERSION = "lines-v1"


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


class Chunker:
    """Packs lines into chunks of at most ``max_tokens`` tokens (and ``12 * max_tokens`` chars)."""

    def __init__(self, counter: TokenCounter, max_tokens: int, overlap_lines: int = 0) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_lines = overlap_lines
        # A cap on characters too, so a line of one giant "word" (one [UNK]) stays small.
        self.max_chars = max_tokens * 12

    def chunk(self, path: str, text: str) -> list[Chunk]:
        """Chunks of ``text`` (the decoded file at ``path``), in file order, with stable ids."""
        lines = split_lines(text)
        content = [line for line in lines if not line.blank]
        counts = self.counter.count([line.text for line in content]) if content else []
        cost = {line.number: n for line, n in zip(content, counts, strict=True)}
        chunks: list[Chunk] = []
        current: list[Line] = []

        def fits(run: list[Line], line: Line) -> bool:
            tokens = sum(cost[x.number] for x in run) + cost[line.number]
            return tokens <= self.max_tokens and line.end - run[0].start <= self.max_chars

        for line in content:
            if cost[line.number] > self.max_tokens or len(line.text) > self.max_chars:
                if current:
                    chunks.append(_span(path, lines, current[0], current[-1]))
                current = []
                chunks.extend(self._pieces(path, line, self.max_tokens))
                continue
            if current and not fits(current, line):
                chunks.append(_span(path, lines, current[0], current[-1]))
                current = current[-self.overlap_lines :] if self.overlap_lines else []
                while current and not fits(current, line):
                    current.pop(0)
            current.append(line)
        if current:
            chunks.append(_span(path, lines, current[0], current[-1]))
        return _assign_ids(path, self._enforce_limit(path, lines, chunks))

    def _pieces(self, path: str, line: Line, budget: int) -> list[Chunk]:
        """Split one long line into pieces that keep its line number."""
        out = []
        for start, end in self.counter.split(line.text, budget):
            while end - start > self.max_chars:
                out.append((start, start + self.max_chars))
                start += self.max_chars
            out.append((start, end))
        return [
            Chunk(
                id="",
                path=path,
                start_line=line.number,
                end_line=line.number,
                start_char=line.start + s,
                end_char=line.start + e,
                text=line.text[s:e],
            )
            for s, e in out
            if line.text[s:e].strip()
        ]

    def _enforce_limit(self, path: str, lines: list[Line], chunks: list[Chunk]) -> list[Chunk]:
        """Re-split chunks a tokenizer counts as too long once joined (non-additive tokenizers)."""
        if not chunks:
            return chunks
        counts = self.counter.count([c.text for c in chunks])
        if all(n <= self.max_tokens for n in counts):
            return chunks
        fixed: list[Chunk] = []
        for chunk, n in zip(chunks, counts, strict=True):
            if n <= self.max_tokens:
                fixed.append(chunk)
                continue
            if chunk.start_line < chunk.end_line:
                run = [x for x in lines[chunk.start_line - 1 : chunk.end_line] if not x.blank]
                mid = (len(run) + 1) // 2
                halves = [_span(path, lines, part[0], part[-1]) for part in (run[:mid], run[mid:])]
            else:
                sub = Line(chunk.start_line, chunk.start_char, chunk.end_char, chunk.text)
                halves = self._pieces(path, sub, max(1, self.max_tokens * 9 // 10))
                if len(halves) == 1 and halves[0].text == chunk.text:  # split disagrees with count
                    cut = len(chunk.text) // 2
                    halves = [
                        Chunk(
                            id="",
                            path=path,
                            start_line=sub.number,
                            end_line=sub.number,
                            start_char=sub.start + s,
                            end_char=sub.start + e,
                            text=chunk.text[s:e],
                        )
                        for s, e in ((0, cut), (cut, len(chunk.text)))
                        if chunk.text[s:e].strip()
                    ]
            fixed.extend(self._enforce_limit(path, lines, halves))
        return fixed


def _span(path: str, lines: list[Line], first: Line, last: Line) -> Chunk:
    body = "\n".join(x.text for x in lines[first.number - 1 : last.number])
    return Chunk(
        id="",
        path=path,
        start_line=first.number,
        end_line=last.number,
        start_char=first.start,
        end_char=last.end,
        text=body,
    )


def _assign_ids(path: str, chunks: list[Chunk]) -> list[Chunk]:
    seen: dict[str, int] = {}
    out = []
    for chunk in chunks:
        occurrence = seen.get(chunk.text, 0)
        seen[chunk.text] = occurrence + 1
        out.append(chunk.model_copy(update={"id": chunk_id(path, chunk.text, occurrence)}))
    return out
