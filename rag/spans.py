"""Sentence and line spans of a chunk: which lines a sentence covers, and where it is in the
chunk's text and in the text embedded for it."""

from __future__ import annotations

from dataclasses import dataclass

from rag.models import Chunk
from rag.text import sentences

WRAP_RATIO = 0.75  # a line this close to its block's longest line was wrapped, not ended
WRAP_MAX = 200  # paragraphs written one per line are longer than any wrap width


def chunk_lines(chunk: Chunk) -> list[tuple[int, str]]:
    """(line number, text) of each line a chunk holds (a split line: one piece)."""
    parts = chunk.text.split("\n")
    if len(parts) != chunk.end_line - chunk.start_line + 1:
        return [(chunk.start_line, chunk.text)]
    return [(chunk.start_line + i, t) for i, t in enumerate(parts)]


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
