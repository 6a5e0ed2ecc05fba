"""The last reading step: the cross reader (:mod:`rag.answering.reader.cross`) reads the
question with each of the best candidate sentences, re-orders them, finds the short answer
in the best one and the lines that hold it, and gives the answerability that decides
abstention (its calibration, fitted on held-out training articles, is in the model's
description; without one the first reader's confidence stands).  The answerability reads
the verifier's logit for the chosen sentence in its context
(:mod:`rag.answering.reader.verifier`) beside the cross reader's outputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.answering.candidates import Candidate
from rag.answering.reader.cross import CrossOutput, CrossReader
from rag.spans import chunk_lines

CROSS_READ = 3  # best candidates of the second pass read by the cross reader.  On the
# development articles (the whole answer path, 1,652 answerable questions) the answer sentence
# was chosen for 0.7845 of them reading 8, 0.7833 reading 6, 0.7821 reading 4 or 5 and 0.7827
# reading 3 (the answer among the 3: 0.8662; chosen among them: 0.9036); the answerability's
# AUROC 0.6767 (8) and 0.6786 (3).  Each pair is one model run (~12 ms of a core on a 2-core
# EPYC): a warm answer took 141 ms of CPU reading 8 and 80 ms reading 3.  The calibration is
# fitted with this number (``cross_read`` in its description; a test holds them equal).
FEATURES = (
    "first_reader_logit",
    "best_relevance",
    "relevance_margin",
    "best_span_score",
    "verifier_logit",
)


@dataclass(frozen=True)
class Calibration:
    """How the cross reader's outputs and the first reader's confidence become one
    answerability, and where the candidates are ranked: relevance + rank_weight x the first
    reader's score."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    rank_weight: float

    @classmethod
    def of(cls, meta: dict[str, Any]) -> Calibration | None:
        raw = meta.get("answerability")
        if not isinstance(raw, dict) or list(raw.get("features", [])) != list(FEATURES):
            return None
        return cls(
            tuple(float(w) for w in raw["weights"]),
            float(raw["bias"]),
            float(raw["threshold"]),
            float(raw.get("rank_weight", 0.0)),
        )

    def confidence(self, row: Sequence[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, row, strict=True))
        return round(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))), 4)


def logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def feature_row(
    first_confidence: float, outs: Sequence[CrossOutput], verified: float
) -> list[float]:
    """The answerability features: the first reader's confidence (as a logit), the best
    relevance, its margin over the second best, the best sentence's span score, and the
    verifier's logit for the chosen sentence."""
    ranked = sorted(outs, key=lambda o: -o.relevance)
    best = ranked[0]
    margin = best.relevance - ranked[1].relevance if len(ranked) > 1 else 0.0
    span = best.span_score if math.isfinite(best.span_score) else 0.0
    return [logit(first_confidence), best.relevance, margin, span, verified]


def span_lines(text: str, lines: Sequence[str], span: tuple[int, int]) -> tuple[int, int] | None:
    """Which of the sentence's ``lines`` (0-based: first, last) hold characters ``span`` of
    ``text`` (the sentence as its lines joined by spaces, from somewhere in the first)."""
    stripped = [line.strip() for line in lines]
    joined = " ".join(stripped)
    at = joined.find(text)
    if at < 0:
        return None
    starts, offset = [], 0
    for line in stripped:
        starts.append(offset)
        offset += len(line) + 1
    a, b = at + span[0], at + max(span[1] - 1, span[0])
    first = max(i for i, s in enumerate(starts) if s <= a)
    last = max(i for i, s in enumerate(starts) if s <= b)
    return first, last


@dataclass(frozen=True)
class CrossReading:
    candidates: list[Candidate]  # the cross-read ones first, best first
    read: int  # how many of them the cross reader read
    confidence: float  # calibrated answerability (the first reader's without a calibration)
    outputs: list[CrossOutput]  # in the order of ``candidates[:read]``
    first_scores: list[float]  # the second pass's scores, in that order
    row: list[float]  # the answerability features


def cross_read(
    reader: CrossReader,
    calibration: Calibration | None,
    question: str,
    refined: list[Candidate],
    first_confidence: float,
    verify: Callable[[Candidate], float] | None = None,
) -> CrossReading:
    """Read the best ``CROSS_READ`` of ``refined`` (best first by the second pass); the
    best of them gets its short answer and its citation narrowed to the answer's lines.
    ``verify``: the verifier's logit for a candidate; without it (a search, where no answer
    is given) the answerability is not computed and the first reader's confidence stands."""
    head = refined[:CROSS_READ]
    outs = reader.read(question, [c.text for c in head])
    weight = calibration.rank_weight if calibration else 0.0
    combined = [o.relevance + weight * c.score for o, c in zip(outs, head, strict=True)]
    order = sorted(
        range(len(head)),
        key=lambda i: (-combined[i], head[i].passage.chunk.path, head[i].start_line),
    )
    chosen = [replace(head[i], score=combined[i]) for i in order]
    outputs = [outs[i] for i in order]
    best, span = chosen[0], outputs[0].span
    if span is not None and span[1] > span[0]:
        short = best.text[span[0] : span[1]].strip(" ,;:.")
        lines = [
            t for n, t in chunk_lines(best.passage.chunk) if best.start_line <= n <= best.end_line
        ]
        where = span_lines(best.text, lines, span) if len(lines) > 1 else (0, 0)
        if where is not None and short:
            chosen[0] = replace(
                best,
                short=short,
                cite_start=best.start_line + where[0],
                cite_end=best.start_line + where[1],
            )
    row = feature_row(first_confidence, outs, verify(best) if verify else 0.0)
    confidence = (
        calibration.confidence(row) if calibration and verify is not None else first_confidence
    )
    firsts = [head[i].score for i in order]
    return CrossReading(chosen + refined[CROSS_READ:], len(head), confidence, outputs, firsts, row)
