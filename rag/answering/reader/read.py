"""The reader at question time: score retrieved sentences in two passes (every sentence of
the pool on cheap features; the best few again with their own token states), choose the
line(s) of the chosen sentence that hold the answer, and say how likely the retrieved text
answers the question at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.adapters.embedder import Embedder
from rag.adapters.lexical import LexicalIndex
from rag.answering.reader.features import (
    AskedQuestion,
    States,
    line_features,
    line_segments,
    question_features,
    sentence_features,
)
from rag.answering.reader.joint import JointOutput
from rag.answering.reader.model import MODEL_DIR, ReaderModel, load_model
from rag.answering.sentence_vectors import Memo
from rag.text import content_words

STATES_CACHE = 2_000  # sentences whose token states are kept (~40 KB each)
REFINE = 12  # best first-pass sentences read again with their token states (CV: 8 -> 12, answer
# among them 0.83 -> 0.85, reader accuracy@1 0.620 -> 0.627, answerability AUROC 0.757 -> 0.769)
NARROW_CONFIDENCE = 0.88  # cite one line only when the line chooser gives its best line at least
# this probability among the sentence's lines, else the range of its two best.  Chosen on
# squad-train, cross-validated by article (python -m rag.evaluation.line_cutoff): the best F2 of
# citation precision (weighted twice) and line-precision; precision 0.532 -> 0.645, line-precision
# 0.532 -> 0.419 against always one line; F2 is flat (0.581-0.582) from 0.85 to 0.95


@dataclass(frozen=True)
class Item:
    """A retrieved sentence as the reader sees it."""

    text: str
    words: frozenset[str]
    cos_context: float  # cosine(question, the sentence's vector in its passage)
    passage_rank: int  # its passage's rank in the hybrid search
    passage_score: float  # its passage's fused score over the best one's


def line_confidence(logits: np.ndarray) -> tuple[int, float]:
    """The line chooser's best line and its probability (softmax over the sentence's lines,
    the listwise loss it was trained with)."""
    p = np.exp(logits - np.max(logits))
    p /= p.sum()
    best = int(np.argmax(p))
    return best, float(p[best])


class Reader:
    def __init__(
        self,
        embedder: Embedder,
        lexical: LexicalIndex,
        model: ReaderModel | None = None,
        cache: int = STATES_CACHE,
    ) -> None:
        self.embedder = embedder
        self.lexical = lexical
        self._model = model
        self._states: Memo[str, States] = Memo(cache)

    @property
    def model(self) -> ReaderModel:
        """The shipped model (checked at first use: see :func:`load_model`)."""
        if self._model is None:
            self._model = load_model(MODEL_DIR)
        return self._model

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def states(self, texts: Sequence[str]) -> list[States]:
        """Token states of ``texts`` (cached by text)."""

        def run(missing: list[str]) -> list[States]:
            return [States(*row) for row in self.embedder.token_states(missing)]

        return self._states.get_many(texts, run)

    def ask(self, question: str) -> AskedQuestion:
        """The question analysed, with its IDF weights and token states."""
        idf = self.lexical.idf(content_words(question))
        return AskedQuestion.of(question, idf, self.states([question])[0])

    def joint(self, asked: AskedQuestion, states: States) -> JointOutput | None:
        """The joint reader's output for the question and a candidate's token states."""
        if asked.states is None:
            return None
        return self.model.joint.read(asked.states.tokens, states.tokens)

    def first_pass(
        self, asked: AskedQuestion, items: Sequence[Item]
    ) -> tuple[np.ndarray, list[list[float]]]:
        rows = [
            sentence_features(
                asked, i.text, i.words, i.cos_context, i.passage_rank, i.passage_score
            )
            for i in items
        ]
        cheap = len(self.model.meta["features"]["rank"])
        return self.model.score("rank", [r[:cheap] for r in rows]), rows

    def second_pass(
        self, asked: AskedQuestion, items: Sequence[Item]
    ) -> tuple[np.ndarray, list[list[float]], list[States], list[JointOutput | None]]:
        """The reader's scores of ``items``, their features, token states and the joint
        reader's outputs (for the line chooser of the one chosen)."""
        states = self.states([i.text for i in items])
        joint: list[JointOutput | None] = [None] * len(items)
        if asked.states is not None:
            joint = list(
                self.model.joint.read_many(asked.states.tokens, [s.tokens for s in states])
            )
        rows = [
            sentence_features(
                asked, i.text, i.words, i.cos_context, i.passage_rank, i.passage_score, s, j
            )
            for i, s, j in zip(items, states, joint, strict=True)
        ]
        return self.model.score("reader", rows), rows, states, joint

    def best_lines(
        self,
        asked: AskedQuestion,
        text: str,
        lines: Sequence[str],
        narrow_at: float = NARROW_CONFIDENCE,
        joint: JointOutput | None = None,
    ) -> tuple[int, int]:
        """Which of ``lines`` (those the sentence spans, 0-based) to cite: (first, last).  The
        line chooser's best line when its confidence reaches ``narrow_at``, else the range of
        its two best lines (a one-line citation misses whenever the chooser is wrong).
        ``joint``: the joint reader's output for ``text``, when the second pass made it."""
        if len(lines) <= 1:
            return 0, max(len(lines) - 1, 0)
        states = self.states([text])[0]
        segments = line_segments(text, lines)
        if joint is None:
            joint = self.joint(asked, states)
        rows = line_features(asked, text, states, segments, joint)
        logits = self.model.score("lines", rows)
        best, confidence = line_confidence(logits)
        if confidence >= narrow_at:
            return best, best
        second = int(np.argsort(-logits, kind="stable")[1])
        return min(best, second), max(best, second)

    def confidence(
        self,
        asked: AskedQuestion,
        reader_scores: Sequence[float],
        rank_top: float,
        best_dense: float,
        top_rows: Sequence[Sequence[float]],
        retrieved_words: frozenset[str] | set[str],
    ) -> float:
        if not len(reader_scores):
            return 0.0
        row = question_features(
            asked, reader_scores, rank_top, best_dense, top_rows, retrieved_words
        )
        return round(self.model.answerable(row), 4)
