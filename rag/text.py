"""Small text tools shared by answering and citing: words, sentences, overlap."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall s t don did didn doesn isn wasn weren won according said says
    tell me please many much""".split()
)
_WORD = re.compile(r"[\w][\w'’.-]*\w|\w", re.UNICODE)
_SENTENCE_END = re.compile(r"""(?<=[.!?])(["”’')\]]*)\s+(?=["“‘(\[]?[A-Z0-9])""")


@functools.lru_cache(maxsize=65_536)
def normalize_word(word: str) -> str:
    w = word.lower().replace("’", "'")
    for suffix in ("'s", "s'"):
        if w.endswith(suffix):
            w = w[: -len(suffix)] or w
    w = w.strip(".'-")
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    return [normalize_word(w) for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words that carry meaning (no stopwords)."""
    out = set()
    for w in _WORD.findall(text):
        if w.lower() in STOPWORDS:
            continue
        n = normalize_word(w)
        if n and n not in STOPWORDS:
            out.add(n)
    return out


def overlap(query: AbstractSet[str], text: AbstractSet[str]) -> float:
    """Share of ``query`` words found in ``text`` (numbers count double)."""
    if not query:
        return 0.0
    weight = {w: (2.0 if any(ch.isdigit() for ch in w) else 1.0) for w in query}
    total = sum(weight.values())
    return sum(v for w, v in weight.items() if w in text) / total


def weighted_overlap(weights: dict[str, float], text: AbstractSet[str]) -> float:
    """Share of the question's word weight (e.g. IDF) found in ``text``."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(v for w, v in weights.items() if w in text) / total


@dataclass(frozen=True)
class Sentence:
    start: int  # offset in the text it came from
    end: int
    text: str


def sentences(text: str) -> Iterator[Sentence]:
    """Sentences of ``text`` with their offsets (a simple, predictable splitter)."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.start() + len(match.group(1))].strip()
        if piece:
            offset = text.index(piece, start)
            yield Sentence(offset, offset + len(piece), piece)
        start = match.end()
    piece = text[start:].strip()
    if piece:
        offset = text.index(piece, start)
        yield Sentence(offset, offset + len(piece), piece)
