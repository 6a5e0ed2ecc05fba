"""The joint reader: a small network that reads a question and a candidate sentence together,
over the MiniLM token states the embedder already computed for each (no second model run).

Each candidate token attends over the question's tokens; what it found, the question's
summary (what it asks for) and the token's best cosine to any question token go through a
layer and a 3-token convolution.  Two outputs: per token, the logit that the token is part
of the answer (its maximum says whether the sentence holds an answer at all, its maximum
within a line says which line holds it), and per sentence, the logit that the sentence
answers the question.  Trained in torch (``rag.evaluation.joint_training``); inference here
is numpy in float32 (no integer kernels: another CPU changes a score by rounding, ~1e-7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

DIM = 384  # MiniLM's token states
WIDTH = 48  # the network's own width
MAX_TOKENS = 96  # candidate tokens read (a longer sentence is cut)
MAX_QUESTION = 40
ABSENT = -20.0  # the logit given where there is nothing to read (no tokens, no question)
NAMES = (
    "pq",
    "bq",
    "ps",
    "bs",
    "alpha",
    "wu",
    "w1",
    "b1",
    "conv",
    "bconv",
    "wt",
    "bt",
    "ws",
    "bsent",
)


@dataclass(frozen=True)
class JointOutput:
    sentence: float  # logit: the sentence answers the question
    tokens: np.ndarray  # logit per candidate token: part of the answer

    @property
    def span(self) -> float:
        """The best token's logit (no tokens: ABSENT)."""
        return float(self.tokens.max()) if len(self.tokens) else ABSENT

    def within(self, rows: np.ndarray) -> float:
        """The best token logit among ``rows`` (ABSENT if none)."""
        rows = rows[rows < len(self.tokens)]
        return float(self.tokens[rows].max()) if len(rows) else ABSENT


def _relu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(x, 0.0)
    return out


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: np.ndarray = e / e.sum(axis=axis, keepdims=True)
    return out


@dataclass(frozen=True)
class JointNet:
    weights: dict[str, np.ndarray]  # float64, as trained and stored

    @cached_property
    def _float32(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) for k, v in self.weights.items()}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], prefix: str = "joint") -> JointNet:
        return cls({n: np.asarray(data[f"{prefix}.{n}"], dtype=np.float64) for n in NAMES})

    def arrays(self, prefix: str = "joint") -> dict[str, np.ndarray]:
        return {f"{prefix}.{n}": v for n, v in self.weights.items()}

    def read(self, question: np.ndarray, candidate: np.ndarray) -> JointOutput:
        """Score one pair: ``question`` and ``candidate`` are unit token states (tokens x 384)."""
        return self.read_many(question, [candidate])[0]

    def read_many(
        self, question: np.ndarray, candidates: Sequence[np.ndarray]
    ) -> list[JointOutput]:
        """Score one question against several candidates at once: every candidate's tokens go
        through each product together (a few larger products instead of many tiny ones)."""
        w = self._float32
        q = np.asarray(question[:MAX_QUESTION], dtype=np.float32)
        cut = [c[:MAX_TOKENS] for c in candidates]
        sizes = np.asarray([len(c) for c in cut], dtype=np.int64)
        if not len(q) or not sizes.sum():
            return [JointOutput(ABSENT, np.full(n, ABSENT)) for n in sizes]
        # all candidate tokens, in order, in one array (float32: half the memory traffic;
        # scores move by ~1e-6 against float64, far inside every margin)
        s = np.concatenate([c for c in cut if len(c)], axis=0, dtype=np.float32)
        cos = s @ q.T  # candidate tokens x question tokens
        pq = q @ w["pq"] + w["bq"]
        ps = s @ w["ps"] + w["bs"]
        attention = _softmax(ps @ pq.T / np.sqrt(WIDTH) + w["alpha"][0] * cos, axis=1)
        found = attention @ pq
        summary = _softmax(pq @ w["wu"], axis=0) @ pq  # the question's summary (width)
        x = np.concatenate(
            [
                ps,
                found,
                ps * found,
                ps * summary,
                cos.max(axis=1, keepdims=True),
                cos.mean(axis=1, keepdims=True),
            ],
            axis=1,
        )
        h = _relu(x @ w["w1"] + w["b1"])
        # the convolution sees zeros beyond each candidate's ends, as in training
        ends = np.cumsum(sizes[sizes > 0])
        starts = ends - sizes[sizes > 0]
        previous = np.zeros_like(h)
        previous[1:] = h[:-1]
        previous[starts] = 0.0
        following = np.zeros_like(h)
        following[:-1] = h[1:]
        following[ends - 1] = 0.0
        conv = w["conv"]  # 3 x width x width (taps: previous, same, next)
        h = h + _relu(previous @ conv[0] + h @ conv[1] + following @ conv[2] + w["bconv"])
        tokens = (h @ w["wt"] + w["bt"])[:, 0]
        counts = (ends - starts)[:, None]
        pooled = np.concatenate(
            [
                np.maximum.reduceat(h, starts, axis=0),
                np.add.reduceat(h, starts, axis=0) / counts,
                np.broadcast_to(summary, (len(starts), WIDTH)),
            ],
            axis=1,
        )
        sentences = iter(pooled @ w["ws"][:, 0] + w["bsent"][0])
        out = []
        for n, start in zip(sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]]), strict=True):
            if n:
                out.append(
                    JointOutput(
                        float(next(sentences)), tokens[start : start + n].astype(np.float64)
                    )
                )
            else:
                out.append(JointOutput(ABSENT, np.zeros(0)))
        return out
