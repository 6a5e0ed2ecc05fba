"""The candidates the reader weighs: one sentence of a retrieved passage with its scores and
the lines it cites (:class:`Candidate`), what the reader made of one question's retrieved text
(:class:`Reading`), and how a reader score ranks and is shown as a passage's score."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rag.answering.citations import Evidence, neutralize, quote, support
from rag.answering.reader.features import AskedQuestion
from rag.answering.reader.read import Item
from rag.answering.retrieval import Retrieved
from rag.models import Citation, Passage


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage (lines ``start_line..end_line``), scored as an
    answer to the question by the reader; ``cite_start..cite_end``, when set, are the lines
    of it that hold the answer (what the citation points at)."""

    passage: Passage
    start_line: int
    end_line: int
    text: str
    score: float
    similarity: float = 0.0  # cosine(question, sentence)
    words: frozenset[str] = frozenset()
    pool_rank: int = 0  # its passage's rank in the hybrid search
    pool_score: float = 0.0  # its passage's fused score over the best one's
    cite_start: int = 0
    cite_end: int = 0
    short: str = ""  # the short answer inside the cited lines (the cross reader's span)

    def evidence(self) -> Evidence:
        return Evidence(
            self.passage.chunk, self.start_line, self.end_line, self.text, self.passage.score
        )

    def cited_text(self) -> str:
        """The sentence as an answer citing its lines: ``… [1]`` (marker lookalikes and
        markdown in the document's words neutralised)."""
        return f"{neutralize(self.text)} [1]"

    def item(self) -> Item:
        return Item(self.text, self.words, self.similarity, self.pool_rank, self.pool_score)

    def citation(self) -> Citation:
        chunk = self.passage.chunk
        start, end = (
            (self.cite_start, self.cite_end)
            if self.cite_start
            else (
                self.start_line,
                self.end_line,
            )
        )
        lines = quote(chunk, start, end)
        return Citation(
            path=chunk.path,
            start_line=start,
            end_line=end,
            quote=lines,
            score=self.passage.score,
            support=round(support(self.text, lines), 4),
            verified=True,  # the sentence is taken from these lines verbatim
            page=chunk.page,
            page_first_line=chunk.page_first_line,
        )


@dataclass(frozen=True)
class Reading:
    """What the reader made of the retrieved text for one question."""

    found: Retrieved
    asked: AskedQuestion
    candidates: list[Candidate]  # best first: the refined ones, then the rest
    confidence: float
    signals: tuple[float, ...] = ()  # the answerability features (cross_read.FEATURES)
    # (relevance, second-pass score) of each cross-read candidate, as candidates[:len(cross)]
    cross: tuple[tuple[float, float], ...] = ()


def unit_score(score: float) -> float:
    """A reader score as a probability (the logistic of it, clipped, rounded)."""
    return round(1.0 / (1.0 + math.exp(-max(min(score, 50.0), -50.0))), 6)


def tiered(best: tuple[int, float] | None) -> tuple[int, float]:
    """Sort key of a passage: by the tier of its best sentence (cross-read, read twice,
    read once), then higher score first."""
    return (3, 0.0) if best is None else (best[0], -best[1])
