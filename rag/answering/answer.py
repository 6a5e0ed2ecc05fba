"""Answering: retrieve passages, generate (or extract), cite verified lines, or abstain."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.adapters.blas import one_blas_thread
from rag.adapters.embedder import Embedder
from rag.adapters.llm.select import Choice, make_backend
from rag.answering.candidates import Candidate, Reading, tiered, unit_score
from rag.answering.citations import (
    Citer,
    Evidence,
    SentenceStream,
    format_evidence,
    format_evidence_lines,
)
from rag.answering.cross_read import Calibration, cross_read
from rag.answering.reader.cross import CrossReader
from rag.answering.reader.features import AskedQuestion
from rag.answering.reader.joint import JointOutput
from rag.answering.reader.read import REFINE, Item, Reader
from rag.answering.reader.verifier import Verifier, window_around
from rag.answering.retrieval import Retrieved, Retriever
from rag.answering.sentence_vectors import SentenceVectors
from rag.config import Settings
from rag.errors import InputError
from rag.models import Answer, Passage, Source, Timings
from rag.prompts import DEFAULT_PROMPTS_DIR, load_prompt
from rag.spans import chunk_lines
from rag.text import content_words, overlap

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The documents do not say: no retrieved passage answers this question."
NOT_FOUND_MARK = "NOT IN DOCUMENTS"
MAX_QUESTION_CHARS = 2000
EVIDENCE_SENTENCES = 4  # sentences shown to a small model
RERANK_POOL = 20  # passages from hybrid search that sentence scoring re-ranks


class AnswerService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        retriever: Retriever,
        default: Choice,
        prompts_dir: Path = DEFAULT_PROMPTS_DIR,
        cross: CrossReader | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        """``cross`` / ``verifier``: the models to read with (default: the shipped ones;
        calibration passes the models it calibrates)."""
        one_blas_thread()  # the reader's numpy products are small: see rag/adapters/blas.py
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.default = default
        self.prompts_dir = prompts_dir
        self._backends: dict[str, Choice] = {default.backend: default}
        self._backend_lock = threading.Lock()
        self.meaning = SentenceVectors(embedder, retriever.lexical)
        self.reader = Reader(embedder, retriever.lexical)
        self.reader.model  # noqa: B018  (checked now: a bad model file fails at start)
        self.cross = cross or CrossReader()  # checked now too (its checksums)
        self.verifier = verifier or Verifier()
        self.calibration = Calibration.of(self.cross.meta)

    def backend(self, name: str | None) -> Choice:
        """The named backend, built once (a lock: two first requests load one model)."""
        if name is None or name == "auto":
            return self.default
        with self._backend_lock:
            if name not in self._backends:
                self._backends[name] = make_backend(self.settings, name)
            return self._backends[name]

    @property
    def abstain_below(self) -> float:
        """The confidence below which rag abstains: RAG_ABSTAIN_BELOW, else the reader's."""
        chosen = self.settings.abstain_below
        if chosen is not None:
            return chosen
        return self.calibration.threshold if self.calibration else self.reader.threshold

    # -- retrieval and reading ---------------------------------------------
    def retrieve(
        self,
        question: str,
        top_k: int | None = None,
        paths: Sequence[str] | None = None,
        merge: bool = True,
        cross: bool = True,
    ) -> Retrieved:
        """The best passages: a pool from hybrid search, re-ranked by the reader (``cross``:
        and its best sentences read by the cross reader, as an answer's are)."""
        return self.read(question, top_k, paths, merge, cross, verify=False).found

    def read(
        self,
        question: str,
        top_k: int | None = None,
        paths: Sequence[str] | None = None,
        merge: bool = True,
        cross: bool = True,
        verify: bool = True,
    ) -> Reading:
        """Retrieve, and let the reader choose.

        Every sentence of the hybrid search's pool is scored by the reader's first pass (its
        vector in context: no model run); the REFINE best are read again with their own
        token states.  Passages holding those come first, best reader score first, then the
        rest by their best first-pass sentence.  The best sentence's citation narrows to the
        line that holds the answer (its two best lines when the line chooser is unsure); the
        confidence is the reader's answerability.  Without ``cross`` (a search: passages,
        no answer) the ranking stops at the second pass: no answerability, no citation;
        without ``verify`` (passages only) the verifier is not asked and the confidence is
        not the calibrated answerability.
        """
        k = top_k or self.settings.top_k
        rerank = self.settings.rerank
        # int8: one model run over the question gives the reader its token states and the
        # vector search its vector (bit-identical to a run of encode_query's own), while
        # the keyword search runs beside it.
        shared = self._question_vector if self.embedder.pools_in_context else None
        pool = self.retriever.search(
            question, max(k, RERANK_POOL) if rerank else k, paths, merge=False, embed=shared
        )
        asked = self.reader.ask(question)
        ranked = self.rank_sentences(asked, pool.vector, pool.passages)
        top = ranked[:REFINE]
        refined: list[Candidate] = []
        confidence = 0.0
        read = 0
        signals: tuple[float, ...] = ()
        crossing: tuple[tuple[float, float], ...] = ()
        if top:
            scores, rows, _, joint = self.reader.second_pass(asked, [c.item() for c in top])
            order = sorted(
                range(len(top)),
                key=lambda i: (-scores[i], top[i].passage.chunk.path, top[i].start_line),
            )
            refined = [replace(top[i], score=float(scores[i])) for i in order]
        if top and cross:
            words: set[str] = set()
            for chunk in {c.passage.chunk.id: c.passage.chunk for c in top}.values():
                for _, said in self.meaning.sentences(chunk):
                    words |= said
            confidence = self.reader.confidence(
                asked,
                [c.score for c in refined],
                top[0].score,
                pool.best_dense,
                [rows[i] for i in order],
                words,
            )
            crossed = cross_read(
                self.cross,
                self.calibration,
                question,
                refined,
                confidence,
                (lambda c: self._verify(question, c)) if verify else None,
            )
            refined, read, confidence = crossed.candidates, crossed.read, crossed.confidence
            signals = tuple(crossed.row)
            crossing = tuple(
                (o.relevance, f) for o, f in zip(crossed.outputs, crossed.first_scores, strict=True)
            )
            if not refined[0].short:  # no short answer: the line chooser narrows the citation
                lead = refined[0]
                first = next(
                    i
                    for i in order
                    if (top[i].passage.chunk.id, top[i].start_line)
                    == (lead.passage.chunk.id, lead.start_line)
                )
                refined[0] = self._narrow(asked, lead, joint[first])
        passages = pool.passages[:k]
        if rerank:
            best: dict[str, tuple[int, float]] = {}
            for tier, group in ((0, refined[:read]), (1, refined[read:]), (2, ranked[REFINE:])):
                for c in group:
                    best.setdefault(c.passage.chunk.id, (tier, c.score))
            chosen = sorted(
                pool.passages,
                key=lambda p: (*tiered(best.get(p.chunk.id)), -p.score, p.chunk.id),
            )[:k]
            passages = [  # score: the reader's score of its best sentence, as a probability
                Passage(chunk=p.chunk, score=unit_score(best.get(p.chunk.id, (1, -99.0))[1]))
                for p in chosen
            ]
        kept = {p.chunk.id for p in passages}
        rest = [c for c in ranked[REFINE:] if c.passage.chunk.id in kept]
        if merge:
            passages = self.retriever.merge_neighbours(passages)
        found = Retrieved(passages, pool.vector, pool.best_dense)
        return Reading(found, asked, refined + rest, confidence, signals, crossing)

    def _verify(self, question: str, candidate: Candidate) -> float:
        """The verifier's logit for ``candidate`` with the sentences around it in its chunk."""
        spans = [span for span, _ in self.meaning.sentences(candidate.passage.chunk)]
        text = window_around(spans, candidate.start_line, candidate.text)
        return self.verifier.score(question, text)

    def _question_vector(self, question: str) -> np.ndarray:
        vector: np.ndarray = self.reader.states([question])[0].vector
        return vector

    def _narrow(
        self, asked: AskedQuestion, best: Candidate, joint: JointOutput | None
    ) -> Candidate:
        """The candidate, its citation narrowed to the line(s) that hold the answer."""
        lines = [
            t for n, t in chunk_lines(best.passage.chunk) if best.start_line <= n <= best.end_line
        ]
        first, last = self.reader.best_lines(asked, best.text, lines, joint=joint)
        return replace(best, cite_start=best.start_line + first, cite_end=best.start_line + last)

    def relevant(self, question: str, found: Retrieved) -> bool:
        """Is anything retrieved plausibly about the question?"""
        if not found.passages or found.best_dense < self.settings.min_relevance:
            return False
        asked = content_words(question)
        if not asked:
            return True
        return any(overlap(asked, self.meaning.words(p.chunk)) > 0 for p in found.passages)

    def rank_sentences(
        self, asked: AskedQuestion, vector: np.ndarray, passages: list[Passage]
    ) -> list[Candidate]:
        """Every sentence of the passages, best answer first by the reader's first pass.

        A sentence's meaning is its vector in the context of its passage (pooled from the
        passage's embedding run, stored at ingest: no model run at query time), or with the
        torch embedder its own embedding.
        """
        raw = [
            (rank, p, span, said)
            for rank, p in enumerate(passages)
            for span, said in self.meaning.sentences(p.chunk)
        ]
        if not raw:
            return []
        if self.meaning.pools_in_context:
            similarity = self.meaning.in_context([p.chunk for p in passages]) @ vector
        else:
            similarity = self.meaning.own([span.text for _, _, span, _ in raw]) @ vector
        top = max((p.score for p in passages), default=0.0) or 1.0
        items = [
            Item(span.text, said, round(float(sim), 6), rank, passage.score / top)
            for (rank, passage, span, said), sim in zip(raw, similarity, strict=True)
        ]
        scores, _ = self.reader.first_pass(asked, items)
        scored = [
            Candidate(
                passage,
                span.start_line,
                span.end_line,
                span.text,
                float(score),
                item.cos_context,
                said,
                rank,
                item.passage_score,
            )
            for (rank, passage, span, said), item, score in zip(raw, items, scores, strict=True)
        ]
        return sorted(scored, key=lambda c: (-c.score, c.passage.chunk.path, c.start_line))

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
        reading = self.read(question, top_k, paths)
        found, candidates = reading.found, reading.candidates
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
        answer.confidence = reading.confidence
        threshold = self.abstain_below
        if not candidates or not self.relevant(question, found):
            answer.notes.append("nothing retrieved is about the question")
        elif answer.confidence < threshold:
            answer.notes.append(
                f"confidence {answer.confidence:.2f} is below the threshold "
                f"{threshold:.2f} (RAG_ABSTAIN_BELOW)"
            )
        else:
            if choice.llm is None:
                best = candidates[0]
                answer.answer, answer.citations = best.cited_text(), [best.citation()]
                answer.short_answer = best.short or None
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
        reader_confidence = answer.confidence
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
            answer.confidence = reader_confidence  # the reader's line, the reader's confidence
            answer.notes.append("showing the best-matching line instead of the model's answer")
        answer.abstained = False
