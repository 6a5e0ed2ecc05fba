"""Answering: retrieve passages, generate (or extract), cite verified lines, or abstain."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.adapters.embedder import Embedder
from rag.adapters.llm.select import Choice, make_backend
from rag.adapters.store import ChromaStore
from rag.config import Settings
from rag.errors import InputError
from rag.models import Answer, Citation, Passage, Source, Timings
from rag.prompts import DEFAULT_PROMPTS_DIR, load_prompt
from rag.services.citations import (
    Evidence,
    chunk_lines,
    cite_answer,
    format_evidence,
    format_evidence_lines,
    quote,
)
from rag.services.text import content_words, overlap, sentences

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The documents do not contain an answer to this question."
NOT_FOUND_MARK = "NOT IN DOCUMENTS"
MAX_QUESTION_CHARS = 2000
EVIDENCE_SENTENCES = 4  # sentences shown to a small model


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved line, scored as an answer to the question."""

    passage: Passage
    line: int
    text: str
    score: float

    def evidence(self) -> Evidence:
        return Evidence(self.passage.chunk, self.line, self.line, self.text, self.passage.score)

    def citation(self) -> Citation:
        chunk = self.passage.chunk
        return Citation(
            path=chunk.path,
            start_line=self.line,
            end_line=self.line,
            quote=quote(chunk, self.line, self.line),
            score=self.passage.score,
        )


def confidence(passages: list[Passage], candidates: list[Candidate]) -> float:
    """In [0, 1]: how well the best retrieved sentence matches the question."""
    if not passages or not candidates:
        return 0.0
    return round(min(1.0, max(0.0, candidates[0].score)), 4)


class AnswerService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        default: Choice,
        prompts_dir: Path = DEFAULT_PROMPTS_DIR,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.default = default
        self.prompts_dir = prompts_dir
        self._backends: dict[str, Choice] = {default.backend: default}

    def backend(self, name: str | None) -> Choice:
        if name is None or name == "auto":
            return self.default
        if name not in self._backends:
            self._backends[name] = make_backend(self.settings, name)
        return self._backends[name]

    # -- retrieval -----------------------------------------------------------
    def retrieve(self, question: str, top_k: int | None = None) -> tuple[list[Passage], np.ndarray]:
        vector = self.embedder.encode_query(question)
        return self.store.query(vector, top_k or self.settings.top_k), vector

    def relevant(self, question: str, passages: list[Passage]) -> bool:
        """Is anything retrieved plausibly about the question?"""
        if not passages or passages[0].score < self.settings.min_relevance:
            return False
        asked = content_words(question)
        if not asked:
            return True
        return any(overlap(asked, content_words(p.chunk.text)) > 0 for p in passages)

    def rank_sentences(
        self, question: str, vector: np.ndarray, passages: list[Passage]
    ) -> list[Candidate]:
        """Retrieved sentences, best answer first: meaning, shared words, passage rank."""
        raw: list[tuple[Passage, int, str]] = []
        for passage in passages:
            for number, line in chunk_lines(passage.chunk):
                raw.extend((passage, number, s.text) for s in sentences(line))
        if not raw:
            return []
        similarity = self.embedder.encode([text for _, _, text in raw]) @ vector
        asked = content_words(question)
        scored = [
            Candidate(
                passage,
                number,
                text,
                0.5 * float(sim) + 0.5 * overlap(asked, content_words(text)) + 0.1 * passage.score,
            )
            for (passage, number, text), sim in zip(raw, similarity, strict=True)
        ]
        return sorted(scored, key=lambda c: -c.score)

    # -- answering -----------------------------------------------------------
    def ask(
        self,
        question: str,
        top_k: int | None = None,
        backend: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer ``question``.  ``on_token`` sees the model's raw text as it is generated."""
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
        passages, vector = self.retrieve(question, top_k)
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
        candidates = self.rank_sentences(question, vector, passages) if passages else []
        answer.confidence = confidence(passages, candidates)
        if candidates and self.relevant(question, passages):
            if choice.llm is None:
                best = candidates[0]
                answer.answer, answer.citations = f"{best.text} [1]", [best.citation()]
                answer.abstained = False
            else:
                self._generate(answer, choice, passages, candidates, on_token)
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
        pieces = []
        for piece in llm.stream(prompt, self.settings.max_tokens):
            pieces.append(piece)
            if on_token:
                on_token(piece)
        raw = "".join(pieces).strip()
        if NOT_FOUND_MARK.lower() in raw.lower():
            answer.notes.append("the model found no answer in the retrieved passages")
            return
        cited = cite_answer(raw, evidence, context)
        if cited.dropped_sentences:
            answer.notes.append(
                f"{cited.dropped_sentences} sentence(s) of the model's answer were not supported "
                "by the retrieved lines and were removed"
            )
        if cited.text:
            answer.answer, answer.citations = cited.text, cited.citations
        else:
            best = candidates[0]
            answer.answer, answer.citations = f"{best.text} [1]", [best.citation()]
            answer.notes.append("showing the best-matching line instead of the model's answer")
        answer.abstained = False
