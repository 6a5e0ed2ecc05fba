"""Training data for the reader, made from a golden file of SQuAD *training* articles: every
question is asked of an index of their corpus, and the retrieved sentences are labelled by
the question's evidence lines and answers.  Three kinds of questions the documents do not
answer: SQuAD 2.0's unanswerable questions, off-corpus questions (asked with their article
left out of the search), and answerable questions whose evidence is taken out of what the
reader sees.  The selection of candidates mirrors ``AnswerService.read`` exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rag.answering.reader.features import CHEAP, AskedQuestion, sentence_features
from rag.answering.reader.read import REFINE, Reader
from rag.answering.retrieval import Retriever
from rag.answering.sentence_vectors import SentenceVectors
from rag.evaluation.golden import GoldenQuestion
from rag.evaluation.metrics import contains_answer
from rag.spans import chunk_lines

POOL = 20  # the hybrid search's pool (AnswerService's RERANK_POOL)


@dataclass
class Sentence:
    text: str
    words: frozenset[str]
    chunk_id: str
    path: str
    start_line: int
    end_line: int
    lines: list[str]  # the text of lines start_line..end_line
    cos_context: float
    rank: int
    score: float  # its passage's fused score over the best one's
    evidence: bool  # overlaps an evidence range
    positive: bool  # overlaps an evidence range and holds a gold answer
    line_labels: list[bool]  # each of its lines: inside an evidence range


@dataclass
class Asked:
    """One question asked of the index (``off_corpus``: its article left out)."""

    question: GoldenQuestion
    article: str
    off_corpus: bool
    asked: AskedQuestion
    best_dense: float
    sentences: list[Sentence]
    cheap: np.ndarray = field(default_factory=lambda: np.zeros((0, CHEAP)))


@dataclass
class Read:
    """One candidate set the reader scores: a question, its candidates (indexes into the
    question's sentences) and what answerability should say."""

    item: int  # index into the asked questions
    kind: str  # "answerable", "unanswerable", "evidence removed", "off-corpus"
    candidates: list[int]
    words: set[str]
    rows: np.ndarray  # full sentence features of the candidates


def article_of(question: GoldenQuestion, fallback: str) -> str:
    return question.evidence[0].file if question.evidence else fallback


def ask(
    q: GoldenQuestion,
    article: str,
    retriever: Retriever,
    meaning: SentenceVectors,
    reader: Reader,
    paths: list[str] | None,
) -> Asked:
    """Search the pool as ``AnswerService`` does and label its sentences."""
    pool = retriever.search(q.question, POOL, paths, merge=False)
    asked = reader.ask(q.question)
    passages = pool.passages
    vectors = meaning.in_context([p.chunk for p in passages]) if passages else np.zeros((0, 1))
    similarity = vectors @ pool.vector if passages else np.zeros(0)
    top = max((p.score for p in passages), default=0.0) or 1.0
    evidence = {(r.file, n) for r in q.evidence for n in range(r.start_line, r.end_line + 1)}
    sentences: list[Sentence] = []
    row = 0
    for rank, passage in enumerate(passages):
        chunk = passage.chunk
        text_of = dict(chunk_lines(chunk))
        for span, said in meaning.sentences(chunk):
            numbers = range(span.start_line, span.end_line + 1)
            labels = [(chunk.path, n) in evidence for n in numbers]
            holds = bool(q.answers) and contains_answer(span.text, q.answers) == 1.0
            sentences.append(
                Sentence(
                    span.text,
                    said,
                    chunk.id,
                    chunk.path,
                    span.start_line,
                    span.end_line,
                    [text_of.get(n, "") for n in numbers],
                    float(similarity[row]),
                    rank,
                    passage.score / top,
                    any(labels),
                    any(labels) and holds,
                    labels,
                )
            )
            row += 1
    item = Asked(q, article, paths is not None, asked, pool.best_dense, sentences)
    item.cheap = cheap_rows(item)
    return item


def cheap_rows(item: Asked) -> np.ndarray:
    """The first-pass features of every sentence of the pool."""
    rows = [
        sentence_features(item.asked, s.text, s.words, s.cos_context, s.rank, s.score)[:CHEAP]
        for s in item.sentences
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), CHEAP)


def select(
    item: Asked, scores: np.ndarray, without: Callable[[Sentence], bool] | None = None
) -> tuple[list[int], set[str]]:
    """The candidates ``AnswerService.read`` reads again (indexes into ``item.sentences``,
    best first by the first pass) and the words of the passages they come from; ``without``:
    sentences the reader must not see."""
    keep = [i for i, s in enumerate(item.sentences) if without is None or not without(s)]
    order = sorted(
        keep,
        key=lambda i: (-scores[i], item.sentences[i].path, item.sentences[i].start_line),
    )[:REFINE]
    passages = {item.sentences[i].chunk_id for i in order}
    words: set[str] = set()
    for i in keep:
        if item.sentences[i].chunk_id in passages:
            words |= item.sentences[i].words
    return order, words
