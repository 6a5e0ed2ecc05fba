"""The verifier: a second cross-encoder that reads the question with the chosen answer
sentence *in its context* (the sentence before and after it) and says whether that text
answers the question at all.  The cross reader (:mod:`rag.answering.reader.cross`) ranks
sentences and finds the short answer; its relevance is a "which sentence" score, and SQuAD
2.0's unanswerable questions are written to look answered by their paragraph.  The verifier
is trained on exactly that distinction: answer sentences against the sentences holding the
answer a careless reader would give to an unanswerable question.  Its logit is one of the
answerability features (:data:`rag.answering.cross_read.FEATURES`).

Same network, format and checks as the cross reader (int8 ONNX, 7-bit weights, checksums in
its description), started from the cross reader's trained weights; trained by
:mod:`rag.evaluation.verifier_run`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rag.answering.reader.cross import CrossReader
from rag.spans import SentenceSpan

VERIFIER_DIR = Path(__file__).parent / "verifier"
MODEL_FILE = "verifier.onnx"
META_FILE = "verifier.json"
MAX_TOKENS = 192  # question and window together (longest first is cut)


def window(texts: Sequence[str], index: int) -> str:
    """Sentence ``index`` of ``texts`` with the sentences before and after it."""
    return " ".join(texts[max(0, index - 1) : index + 2])


def window_around(spans: Sequence[SentenceSpan], start_line: int, text: str) -> str:
    """The window of the sentence ``text`` starting on ``start_line`` among a chunk's
    sentences (the sentence alone when it is not one of them)."""
    for i, span in enumerate(spans):
        if span.start_line == start_line and span.text == text:
            return window([s.text for s in spans], i)
    return text


class Verifier:
    """The int8 verifier; :meth:`score` is its answerability logit for one window."""

    def __init__(self, folder: Path = VERIFIER_DIR) -> None:
        # one window per answer: one session (each holds its own copy of the weights) on up
        # to two threads (10 ms instead of 19 for ~70 tokens, 2 cores; the same scores)
        threads = max(1, min(2, os.cpu_count() or 1))
        self.reader = CrossReader(folder, MODEL_FILE, META_FILE, max_sessions=1, threads=threads)
        self.meta = self.reader.meta

    def score(self, question: str, text: str) -> float:
        return self.reader.read(question, [text])[0].relevance
