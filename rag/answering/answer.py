"""Answering: retrieve passages, generate (or extract), cite verified lines, or abstain."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.adapters.embedder import Embedder
from rag.adapters.llm.select import Choice, make_backend
from rag.answering.answer_type import answer_type, answer_type_match
from rag.answering.citations import (
    Citer,
    Evidence,
    SentenceStream,
    format_evidence,
    format_evidence_lines,
    neutralize,
    quote,
    support,
)
from rag.answering.retrieval import Retrieved, Retriever
from rag.answering.sentence_vectors import SentenceVectors
from rag.config import Settings
from rag.errors import InputError
from rag.models import Answer, Citation, Passage, Source, Timings
from rag.prompts import DEFAULT_PROMPTS_DIR, load_prompt
from rag.spans import SentenceSpan
from rag.text import content_words, overlap, weighted_overlap

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The documents do not say: no retrieved passage answers this question."
NOT_FOUND_MARK = "NOT IN DOCUMENTS"
MAX_QUESTION_CHARS = 2000
EVIDENCE_SENTENCES = 4  # sentences shown to a small model
# How a sentence is scored as an answer: meaning, the question's (IDF-weighted) words, the
# rank of its passage, and whether it holds the kind of thing asked (a date for "when"...).
W_SIM, W_OVERLAP, W_RANK, W_TYPE = 0.5, 0.5, 0.05, 0.15
IDF_FLOOR = 0.5
RERANK_POOL = 20  # passages from hybrid search that sentence scoring re-ranks
REFINE = 8  # best answer sentences (by vectors in context) scored again with their own


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage (lines ``start_line..end_line``), scored as an
    answer to the question."""

    passage: Passage
    start_line: int
    end_line: int
    text: str
    score: float
    similarity: float = 0.0  # cosine(question, sentence)

    def evidence(self) -> Evidence:
        return Evidence(
            self.passage.chunk, self.start_line, self.end_line, self.text, self.passage.score
        )

    def cited_text(self) -> str:
        """The sentence as an answer citing its lines: ``… [1]`` (marker lookalikes and
        markdown in the document's words neutralised)."""
        return f"{neutralize(self.text)} [1]"

    def citation(self) -> Citation:
        chunk = self.passage.chunk
        lines = quote(chunk, self.start_line, self.end_line)
        return Citation(
            path=chunk.path,
            start_line=self.start_line,
            end_line=self.end_line,
            quote=lines,
            score=self.passage.score,
            support=round(support(self.text, lines), 4),
            verified=True,  # the sentence is taken from these lines verbatim
            page=chunk.page,
            page_first_line=chunk.page_first_line,
        )


# Confidence is a logistic model of two retrieval signals: the best passage's cosine
# similarity and the chosen sentence's.  Coefficients fitted by logistic regression on the
# SQuAD benchmark (../shared/benchmarks/squad: 1,196 answerable, 320 unanswerable questions);
# word-overlap signals added nothing there (its unanswerable questions are written to share
# the words of the text), so they are not used.  See README, "Abstention".
CONF_DENSE, CONF_SENTENCE, CONF_BIAS = 3.56, 0.85, -1.16


def confidence(best_dense: float, candidates: list[Candidate]) -> float:
    """In [0, 1]: how likely the documents hold the answer (for abstaining and the eval)."""
    if not candidates:
        return 0.0
    z = CONF_DENSE * best_dense + CONF_SENTENCE * candidates[0].similarity + CONF_BIAS
    return round(1.0 / (1.0 + math.exp(-z)), 4)


class AnswerService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        retriever: Retriever,
        default: Choice,
        prompts_dir: Path = DEFAULT_PROMPTS_DIR,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.default = default
        self.prompts_dir = prompts_dir
        self._backends: dict[str, Choice] = {default.backend: default}
        self._backend_lock = threading.Lock()
        self.meaning = SentenceVectors(embedder, retriever.lexical)

    def backend(self, name: str | None) -> Choice:
        """The named backend, built once (a lock: two first requests load one model)."""
        if name is None or name == "auto":
            return self.default
        with self._backend_lock:
            if name not in self._backends:
                self._backends[name] = make_backend(self.settings, name)
            return self._backends[name]

    # -- retrieval -----------------------------------------------------------
    def retrieve(
        self,
        question: str,
        top_k: int | None = None,
        paths: Sequence[str] | None = None,
        merge: bool = True,
    ) -> Retrieved:
        """The best passages: a pool from hybrid search, re-ranked by their best sentence."""
        k = top_k or self.settings.top_k
        if not self.settings.rerank:
            return self.retriever.search(question, k, paths, merge=merge)
        pool = self.retriever.search(question, max(k, RERANK_POOL), paths, merge=False)
        best: dict[str, float] = {}
        in_context = self.meaning.pools_in_context
        for candidate in self.rank_sentences(question, pool.vector, pool.passages, in_context):
            best.setdefault(candidate.passage.chunk.id, candidate.score)
        ranked = sorted(
            pool.passages, key=lambda p: (-best.get(p.chunk.id, -9.0), -p.score, p.chunk.id)
        )[:k]
        passages = [
            Passage(chunk=p.chunk, score=round(best.get(p.chunk.id, 0.0), 6)) for p in ranked
        ]
        if merge:
            passages = self.retriever.merge_neighbours(passages)
        return Retrieved(passages, pool.vector, pool.best_dense)

    def relevant(self, question: str, found: Retrieved) -> bool:
        """Is anything retrieved plausibly about the question?"""
        if not found.passages or found.best_dense < self.settings.min_relevance:
            return False
        asked = content_words(question)
        if not asked:
            return True
        return any(overlap(asked, self.meaning.words(p.chunk)) > 0 for p in found.passages)

    def rank_sentences(
        self,
        question: str,
        vector: np.ndarray,
        passages: list[Passage],
        in_context: bool = False,
        refine: int = 0,
    ) -> list[Candidate]:
        """Retrieved sentences, best answer first: meaning, shared words, passage rank.

        A sentence's meaning is its own embedding, or with ``in_context`` its vector pooled
        from its passage's embedding run (stored at ingest: no model run at query time).
        Re-ranking the pool uses the second (on SQuAD, recall@1 +0.5 points and nothing
        worse).  Choosing the answer sentence: ``refine`` best sentences by the second are
        scored again with their own embeddings and lead, best first (citations chosen by
        vectors in context alone were 2 points worse; this way only a few sentences of a
        new question are embedded).
        """

        raw = [(p, span, said) for p in passages for span, said in self.meaning.sentences(p.chunk)]
        if not raw:
            return []
        if in_context:
            similarity = self.meaning.in_context([p.chunk for p in passages]) @ vector
        else:
            similarity = self.meaning.own([span.text for _, span, _ in raw]) @ vector
        asked = content_words(question)
        # IDF, smoothed: on a small corpus raw IDF lets one incidental rare word dominate
        weights = {w: IDF_FLOOR + v for w, v in self.retriever.lexical.idf(asked).items()}
        kind = answer_type(question)
        rank = {id(p): i for i, p in enumerate(passages)}
        scored = self._score(raw, similarity, weights, kind, question, rank)
        order = sorted(scored, key=lambda c: (-c.score, c.passage.chunk.path, c.start_line))
        if not (in_context and refine):
            return order
        best = {(id(c.passage), c.start_line, c.text) for c in order[:refine]}
        top = [item for item in raw if (id(item[0]), item[1].start_line, item[1].text) in best]
        own = self.meaning.own([span.text for _, span, _ in top]) @ vector
        again = self._score(top, own, weights, kind, question, rank)
        again.sort(key=lambda c: (-c.score, c.passage.chunk.path, c.start_line))
        return again + order[refine:]

    @staticmethod
    def _score(
        raw: list[tuple[Passage, SentenceSpan, frozenset[str]]],
        similarity: np.ndarray,
        weights: dict[str, float],
        kind: str | None,
        question: str,
        rank: dict[int, int],
    ) -> list[Candidate]:
        scored = []
        for (passage, span, said), sim in zip(raw, similarity, strict=True):
            score = (
                W_SIM * float(sim)
                + W_OVERLAP * weighted_overlap(weights, said)
                + W_RANK / (1 + rank[id(passage)])
                + W_TYPE * answer_type_match(kind, span.text, question)
            )
            scored.append(
                Candidate(
                    passage,
                    span.start_line,
                    span.end_line,
                    span.text,
                    score,
                    round(float(sim), 6),
                )
            )
        return scored

    # -- answering -----------------------------------------------------------
    def ask(
        self,
        question: str,
        top_k: int | None = None,
        backend: str | None = None,
        on_token: Callable[[str], None] | None = None,
        paths: Sequence[str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Answer:
        """Answer ``question``.

        ``on_token`` sees the answer as the model writes it, one verified sentence at a time
        (with its ``[k]`` markers; the pieces joined are the final text unless the model
        answers nothing usable): never text that did not pass the citation check.
        ``on_progress`` is called with the number of pieces the model has written so far,
        at every piece (it may raise to stop the model).
        """
        question = question.strip()
        if not question:
            raise InputError("the question is empty", 'ask something, e.g. rag ask "Who ...?"')
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(
                f"the question is {len(question)} characters long (limit {MAX_QUESTION_CHARS})",
                "ask a shorter question",
            )
        choice = self.backend(backend)
        started = time.perf_counter()
        found = self.retrieve(question, top_k, paths)
        passages = found.passages
        retrieved = time.perf_counter()
        answer = Answer(
            question=question,
            answer=ABSTAIN_TEXT,
            abstained=True,
            backend=choice.backend,
            model=choice.model,
            backend_reason=choice.reason,
            sources=[Source.of(p) for p in passages],
        )
        candidates = (
            self.rank_sentences(
                question, found.vector, passages, self.meaning.pools_in_context, REFINE
            )
            if passages
            else []
        )
        answer.confidence = confidence(found.best_dense, candidates)
        if not candidates or not self.relevant(question, found):
            answer.notes.append("nothing retrieved is about the question")
        elif answer.confidence < self.settings.abstain_below:
            answer.notes.append(
                f"confidence {answer.confidence:.2f} is below the threshold "
                f"{self.settings.abstain_below:.2f} (RAG_ABSTAIN_BELOW)"
            )
        else:
            if choice.llm is None:
                best = candidates[0]
                answer.answer, answer.citations = best.cited_text(), [best.citation()]
                answer.abstained = False
            else:
                self._generate(answer, choice, passages, candidates, on_token, on_progress)
        finished = time.perf_counter()
        answer.timings = Timings(
            retrieval_ms=round((retrieved - started) * 1000, 1),
            generation_ms=round((finished - retrieved) * 1000, 1),
            total_ms=round((finished - started) * 1000, 1),
        )
        return answer

    def _generate(
        self,
        answer: Answer,
        choice: Choice,
        passages: list[Passage],
        candidates: list[Candidate],
        on_token: Callable[[str], None] | None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        llm = choice.llm
        assert llm is not None
        context = [Evidence.of_passage(p) for p in passages]
        if llm.evidence == "sentences":
            evidence = [c.evidence() for c in candidates[:EVIDENCE_SENTENCES]]
            shown = format_evidence_lines(evidence)
        else:
            evidence = context
            shown = format_evidence(evidence)
        prompt = load_prompt(llm.prompt_name, self.prompts_dir).render(
            question=answer.question, evidence=shown
        )
        answer.prompt_version = prompt.version
        citer = Citer(
            evidence,
            context,
            threshold=self.settings.support_threshold,
            keep_unsupported=self.settings.unsupported == "mark",
        )
        checked = SentenceStream(citer)
        for written, piece in enumerate(llm.stream(prompt, self.settings.max_tokens), start=1):
            if on_progress:
                on_progress(written)
            for part in checked.feed(piece):
                if on_token:
                    on_token(part)
        for part in checked.finish():
            if on_token:
                on_token(part)
        if NOT_FOUND_MARK.lower() in checked.raw.lower():
            answer.notes.append("the model found no answer in the retrieved passages")
            return
        cited = citer.result()
        if cited.dropped_sentences:
            done = "marked [unsupported]" if self.settings.unsupported == "mark" else "removed"
            answer.notes.append(
                f"{cited.dropped_sentences} sentence(s) of the model's answer were not supported "
                f"by the retrieved lines and were {done}"
            )
            share = cited.kept_sentences / (cited.kept_sentences + cited.dropped_sentences)
            answer.confidence = round(answer.confidence * share, 4)
        if cited.citations:
            answer.answer, answer.citations = cited.text, cited.citations
        else:
            best = candidates[0]
            answer.answer, answer.citations = best.cited_text(), [best.citation()]
            answer.notes.append("showing the best-matching line instead of the model's answer")
        answer.abstained = False
