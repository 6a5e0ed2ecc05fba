"""Feature vectors the reader scores: for a (question, sentence) pair, for each line of a
chosen sentence, and for a question given its best candidates (answerability).

Besides shared words and the bi-encoder cosine, the features look at what the question asks
for: late interaction between the question's and the candidate's MiniLM token states (each
question token's best match in the candidate; the question's focus, "which country", against
candidate tokens that match nothing in the question), the asked-for kind of answer, and
whether the candidate holds such a thing that the question does not already say.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.answering.reader.analysis import KINDS, Question, focus_span, holds_asked
from rag.answering.reader.joint import JointOutput
from rag.text import STOPWORDS, content_words

NOVEL_BELOW = 0.6  # a candidate token whose best match in the question is below this is new
IDF_FLOOR = 0.5

SENTENCE_FEATURES: tuple[str, ...] = (
    "cos_context",
    "idf_overlap",
    "overlap",
    "missing_rare",
    "novel_words",
    "holds_asked",
    *(f"kind_{k}" for k in KINDS),
    *(f"asked_{k}" for k in KINDS),
    "passage_rank",
    "passage_score",
    "length",
    # from token states (the refined candidates only)
    "cos_own",
    "maxsim",
    "maxsim_content",
    "slot",
    "novel_tokens",
    # from the joint reader (question and candidate read together)
    "joint",
    "joint_span",
)
CHEAP = SENTENCE_FEATURES.index("cos_own")  # the first CHEAP features need no model run

LINE_FEATURES: tuple[str, ...] = (
    "maxsim",
    "slot",
    "idf_overlap",
    "holds_asked",
    "novel_words",
    "share",
    "first",
    "last",
    "lines",
    "span",
    "span_gap",
)

QUESTION_FEATURES: tuple[str, ...] = (
    "reader_top",
    "reader_margin",
    "reader_prob",
    "rank_top",
    "best_dense",
    "top_holds_asked",
    "any_holds_asked",
    "top_idf_overlap",
    "top_missing_rare",
    "top_maxsim_content",
    "top_slot",
    "covered_all",
    "missing_all",
    *(f"kind_{k}" for k in KINDS),
    "top_joint",
    "max_joint",
    "max_span",
)


@dataclass(frozen=True)
class States:
    """A text's token states (unit rows) and their character ranges."""

    vector: np.ndarray
    tokens: np.ndarray
    offsets: np.ndarray

    def within(self, start: int, end: int) -> np.ndarray:
        """Rows of the tokens inside characters ``start..end``."""
        o = self.offsets
        return np.flatnonzero((o[:, 0] < end) & (o[:, 1] > start))


@dataclass(frozen=True)
class AskedQuestion:
    """A question prepared once per ask: its analysis, IDF weights and token states."""

    question: Question
    weights: dict[str, float]  # content word -> smoothed IDF
    states: States | None
    content_rows: np.ndarray  # question tokens inside content words
    focus_rows: np.ndarray  # question tokens of the focus ("which country does")

    @classmethod
    def of(cls, text: str, idf: dict[str, float], states: States | None) -> AskedQuestion:
        question = Question.of(text)
        weights = {w: IDF_FLOOR + v for w, v in idf.items()}
        content = np.zeros(0, dtype=np.int64)
        focus = np.zeros(0, dtype=np.int64)
        if states is not None:
            rows = [
                states.within(m.start(), m.end())
                for m in re.finditer(r"[\w'’-]+", text)
                if m.group(0).lower() not in STOPWORDS
            ]
            content = np.unique(np.concatenate(rows)) if rows else content
            focus = states.within(*focus_span(text))
        return cls(question, weights, states, content, focus)


def _idf_share(weights: dict[str, float], words: frozenset[str] | set[str]) -> float:
    total = sum(weights.values())
    return sum(v for w, v in weights.items() if w in words) / total if total > 0 else 0.0


def _missing_rare(weights: dict[str, float], words: frozenset[str] | set[str]) -> float:
    """The rarest question word the text lacks, as a share of the rarest question word."""
    if not weights:
        return 0.0
    top = max(weights.values())
    missing = [v for w, v in weights.items() if w not in words]
    return max(missing, default=0.0) / top if top > 0 else 0.0


def _overlap(asked: frozenset[str], words: frozenset[str] | set[str]) -> float:
    return len(asked & words) / len(asked) if asked else 0.0


def _token_features(asked: AskedQuestion, states: States) -> tuple[float, float, float, float]:
    """maxsim, maxsim over content tokens, slot, share of novel candidate tokens."""
    q = asked.states
    if q is None or not len(q.tokens) or not len(states.tokens):
        return 0.0, 0.0, 0.0, 0.0
    sim = q.tokens @ states.tokens.T
    best = sim.max(axis=1)
    maxsim = float(best.mean())
    content = float(best[asked.content_rows].mean()) if len(asked.content_rows) else maxsim
    novel = sim.max(axis=0) < NOVEL_BELOW
    slot = 0.0
    if novel.any() and len(asked.focus_rows):
        slot = float(sim[np.ix_(asked.focus_rows, np.flatnonzero(novel))].max())
    return maxsim, content, slot, float(novel.mean())


def sentence_features(
    asked: AskedQuestion,
    text: str,
    words: frozenset[str],
    cos_context: float,
    passage_rank: int,
    passage_score: float,
    states: States | None = None,
    joint: JointOutput | None = None,
) -> list[float]:
    """The features of one candidate sentence (``states``: its own token states, or None
    for the cheap first pass; ``joint``: the joint reader's output for the pair)."""
    q = asked.question
    holds = holds_asked(text, q, words)
    novel = len(words - q.words)
    row = [
        cos_context,
        _idf_share(asked.weights, words),
        _overlap(q.words, words),
        _missing_rare(asked.weights, words),
        math.log1p(novel),
        holds,
        *(float(q.kind == k) for k in KINDS),
        *(holds * float(q.kind == k) for k in KINDS),
        1.0 / (1 + passage_rank),
        passage_score,
        math.log1p(len(text)) / 6,
    ]
    if states is None:
        return row + [0.0] * (len(SENTENCE_FEATURES) - CHEAP)
    own = float(asked.states.vector @ states.vector) if asked.states is not None else 0.0
    read = [joint.sentence, joint.span] if joint is not None else [0.0, 0.0]
    return [*row, own, *_token_features(asked, states), *read]


def line_segments(text: str, lines: Sequence[str]) -> list[tuple[int, int]]:
    """Character ranges of ``text`` (a sentence joined from ``lines`` with single spaces,
    each stripped; it may start and end mid-line) that come from each line."""
    out: list[tuple[int, int]] = []
    pos = 0
    for i, raw in enumerate(lines):
        line = raw.strip()
        if i == 0:  # the sentence's start: the longest end of the line it begins with
            length = next(
                (k for k in range(min(len(line), len(text)), 0, -1) if line.endswith(text[:k])),
                len(text) // max(len(lines), 1),
            )
        else:
            length = len(line)
        end = min(len(text), pos + length)
        out.append((pos, end))
        pos = end + 1
    if out:
        out[-1] = (out[-1][0], len(text))
    return out


def line_features(
    asked: AskedQuestion,
    text: str,
    states: States | None,
    segments: list[tuple[int, int]],
    joint: JointOutput | None = None,
) -> list[list[float]]:
    """Features of each line of a chosen sentence (``segments``: see :func:`line_segments`;
    ``joint``: the joint reader's token scores for the sentence)."""
    rows = []
    spans = [
        joint.within(states.within(start, end)) if joint is not None and states is not None else 0.0
        for start, end in segments
    ]
    best_span = max(spans, default=0.0)
    total = max(len(states.tokens), 1) if states is not None else 1
    for i, (start, end) in enumerate(segments):
        piece = text[start:end]
        words = frozenset(content_words(piece))
        maxsim = slot = share = 0.0
        if states is not None and asked.states is not None:
            inside = states.within(start, end)
            if len(inside):
                part = States(states.vector, states.tokens[inside], states.offsets[inside])
                maxsim, _, slot, _ = _token_features(asked, part)
                share = len(inside) / total
        rows.append(
            [
                maxsim,
                slot,
                _idf_share(asked.weights, words),
                holds_asked(piece, asked.question),
                math.log1p(len(words - asked.question.words)),
                share,
                float(i == 0),
                float(i == len(segments) - 1),
                float(len(segments)),
                spans[i],
                spans[i] - best_span,
            ]
        )
    return rows


def question_features(
    asked: AskedQuestion,
    reader_scores: Sequence[float],
    rank_top: float,
    best_dense: float,
    top_rows: Sequence[Sequence[float]],
    retrieved_words: frozenset[str] | set[str],
) -> list[float]:
    """Answerability features: the reader's scores of the best candidates (best first, with
    ``top_rows`` their sentence features), and what all retrieved text covers."""
    if not len(reader_scores):
        return [0.0] * len(QUESTION_FEATURES)
    scores = np.asarray(reader_scores, dtype=np.float64)
    top = float(scores[0])
    second = float(scores[1]) if len(scores) > 1 else top - 5.0
    prob = float(1.0 / np.exp(scores - top).sum())
    col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
    best = top_rows[0]
    q = asked.question
    return [
        top,
        top - second,
        prob,
        rank_top,
        best_dense,
        best[col["holds_asked"]],
        max(r[col["holds_asked"]] for r in top_rows[:3]),
        best[col["idf_overlap"]],
        best[col["missing_rare"]],
        best[col["maxsim_content"]],
        best[col["slot"]],
        _idf_share(asked.weights, retrieved_words),
        _missing_rare(asked.weights, retrieved_words),
        *(float(q.kind == k) for k in KINDS),
        best[col["joint"]],
        max(r[col["joint"]] for r in top_rows),
        max(r[col["joint_span"]] for r in top_rows),
    ]
