"""`rag eval`: run every golden question through retrieval and answering, score, summarise."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import InputError
from rag.evaluation import metrics as m
from rag.evaluation.golden import (
    GoldenQuestion,
    corpus_hash,
    file_hash,
    load_golden,
    load_goldens,
)
from rag.runtime import Runtime

log = logging.getLogger(__name__)
RETRIEVAL_DEPTH = 10  # recall@10 needs ten passages, whatever top_k answers with
_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass
class EvalConfig:
    golden: Path | tuple[Path, ...]  # one golden file, or several asked as one set
    corpus: Path | None  # None: use the configured index as it is
    backend: str
    top_k: int
    drop: tuple[str, ...] = ()  # corpus files left out of the index: their questions are off-corpus
    drop_evidence: bool = False  # each answerable question asked without its passage: unanswerable

    @property
    def goldens(self) -> list[Path]:
        return [self.golden] if isinstance(self.golden, Path) else list(self.golden)


@dataclass
class EvalRun:
    rows: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


def question_row(q: GoldenQuestion, runtime: Runtime, backend: str, top_k: int) -> dict[str, Any]:
    """Ask one golden question and score it."""
    service = runtime.answer_service
    started = time.perf_counter()
    passages = service.retrieve(q.question, max(RETRIEVAL_DEPTH, top_k), merge=False).passages
    retrieval_ms = (time.perf_counter() - started) * 1000
    answer = service.ask(q.question, top_k=top_k, backend=backend)
    retrieved = [m.Range(p.chunk.path, p.chunk.start_line, p.chunk.end_line) for p in passages]
    cited = [m.Range(c.path, c.start_line, c.end_line) for c in answer.citations]
    text = _MARKER.sub("", answer.answer).strip() if not answer.abstained else ""
    short = (answer.short_answer or text) if not answer.abstained else ""  # what EM/F1 judge
    score = m.citation_scores(cited, q.evidence)
    rank = m.hit_rank(retrieved, q.evidence) if q.answerable else None
    worded = q.answerable and bool(q.answers)  # rows without answers: judged on citations
    return {
        "id": q.id,
        "origin": q.origin,
        "question": q.question,
        "answerable": q.answerable,
        "gold": q.answers,
        "answer": answer.answer,
        "short_answer": answer.short_answer,
        "abstained": answer.abstained,
        "confidence": answer.confidence,
        "citations": [c.model_dump(exclude={"quote"}) for c in answer.citations],
        "retrieved": [f"{r.file}:{r.start_line}-{r.end_line}" for r in retrieved],
        "hit_rank": rank,
        "exact_match": m.exact_match(short, q.answers) if worded else None,
        "f1": m.token_f1(short, q.answers) if worded else None,
        "contains": m.contains_answer(text, q.answers) if worded else None,
        "citation": {
            "cited": score.cited,
            "correct": score.correct,
            "cited_lines": score.cited_lines,
            "evidence_lines_cited": score.evidence_lines_cited,
        },
        "correct": _correct(q, answer.abstained, text, score),
        "latency_ms": {
            "retrieval": round(retrieval_ms, 2),
            "generation": answer.timings.generation_ms,
            "total": answer.timings.total_ms,
        },
        "prompt_version": answer.prompt_version,
        "model": answer.model,
    }


def _correct(q: GoldenQuestion, abstained: bool, text: str, cite: m.CitationScore) -> bool:
    """Right = abstained on an unanswerable question, or answered with a gold alias (when the
    row has any) and a correct citation on an answerable one."""
    if not q.answerable:
        return abstained
    worded = not q.answers or m.contains_answer(text, q.answers) == 1.0
    return not abstained and worded and cite.correct > 0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate metrics (deterministic) and latency (not) over per-question rows."""
    answerable = [r for r in rows if r["answerable"]]
    metrics = m.summary_metrics(rows)
    latency = {
        stage: {
            "p50": round(m.percentile([r["latency_ms"][stage] for r in rows], 50), 1),
            "p95": round(m.percentile([r["latency_ms"][stage] for r in rows], 95), 1),
        }
        for stage in ("retrieval", "generation", "total")
    }
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(rows) - len(answerable),
        "metrics": metrics,
        "latency_ms": latency,
    }


def _drop_collections(runtime: Runtime) -> None:
    """Remove a temporary index's collections from a Chroma server (embedded: its folder
    goes with the temporary directory)."""
    if not runtime.settings.chroma_url or not runtime.manifest.exists():
        return
    try:
        for gen in runtime.manifest.generations():
            runtime.stores(gen)[0].drop()
    except Exception as exc:  # never hide the evaluation's own result
        log.warning("could not remove the evaluation's collections from the server: %s", exc)


def without_evidence(q: GoldenQuestion) -> tuple[GoldenQuestion, Callable[[Any], bool] | None]:
    """The question as asked of the index without the passage it was written from (its
    ``context``, else its evidence lines): unanswerable, and which chunks to hide."""
    if not q.answerable:
        return q, None
    hidden = [(r.file, r.start_line, r.end_line) for r in (q.context or q.evidence)]

    def exclude(chunk: Any) -> bool:
        return any(
            chunk.path == f and chunk.start_line <= e and chunk.end_line >= s
            for f, s, e in hidden
        )

    return replace(q, answerable=False, answers=[], evidence=[]), exclude


def off_corpus(q: GoldenQuestion, dropped: tuple[str, ...]) -> GoldenQuestion:
    """The question as asked of an index without ``dropped``: unanswerable when every file
    holding its evidence is left out."""
    if q.answerable and q.evidence and all(r.file in dropped for r in q.evidence):
        return replace(q, answerable=False, answers=[], evidence=[])
    return q


def _without(corpus: Path, dropped: tuple[str, ...], target: Path) -> Path:
    """A copy of ``corpus`` without the ``dropped`` files (paths relative to it)."""
    missing = [d for d in dropped if not (corpus / d).is_file()]
    if missing:
        raise InputError(
            f"--drop names files that are not in {corpus}: {', '.join(missing)}",
            "give paths relative to the corpus folder, e.g. --drop Normans.txt",
        )
    names = {(corpus / d).resolve() for d in dropped}
    shutil.copytree(
        corpus,
        target,
        ignore=lambda folder, files: [f for f in files if (Path(folder) / f).resolve() in names],
    )
    return target


def run_eval(
    settings: Settings,
    config: EvalConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalRun:
    """Run the golden questions.  Ctrl-C stops early; what was done is returned."""
    goldens = config.goldens
    questions = load_goldens(goldens)
    run = EvalRun()
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp, ExitStack() as stack:
        update: dict[str, object] = {"exact_search": True, "top_k": config.top_k}
        if config.corpus is not None:
            corpus = config.corpus
            if config.drop:
                corpus = _without(config.corpus, config.drop, Path(tmp) / "corpus")
                questions = [off_corpus(q, config.drop) for q in questions]
            update.update(corpus_dir=corpus, index_dir=Path(tmp) / "index")
            if settings.chroma_url:  # a server's collections are shared: a name of its own
                update["collection"] = f"rag-eval-{uuid.uuid4().hex[:12]}"
        settings = settings.model_copy(update=update)
        runtime = Runtime(settings)
        if config.corpus is not None:
            stack.callback(_drop_collections, runtime)
            runtime.ingest_service().ingest()
        choice = runtime.answer_service.backend(config.backend)
        run.meta = {
            "backend": choice.backend,
            "model": choice.model,
            "embedding_model": runtime.index_info.embedding_model,
            "chunker": runtime.index_info.chunker,
            "top_k": config.top_k,
            "golden": str(goldens[0]),
            "golden_sha256": file_hash(goldens[0]),
            "goldens": [
                {"path": str(g), "sha256": file_hash(g), "questions": len(load_golden(g))}
                for g in goldens
            ],
            "corpus": str(settings.corpus_dir),
            "corpus_sha256": corpus_hash(settings.corpus_dir),
            "exact_search": True,
            "dropped": list(config.drop),
            "drop_evidence": config.drop_evidence,
            "abstain_below": runtime.answer_service.abstain_below,
        }
        try:
            retriever = runtime.answer_service.retriever
            for done, q in enumerate(questions, start=1):
                exclude = None
                if config.drop_evidence:
                    q, exclude = without_evidence(q)
                retriever.exclude = exclude
                try:
                    run.rows.append(question_row(q, runtime, config.backend, config.top_k))
                finally:
                    retriever.exclude = None
                if on_progress:
                    on_progress(done, len(questions))
        except KeyboardInterrupt:
            run.interrupted = True
    versions = sorted({r["prompt_version"] for r in run.rows if r["prompt_version"]})
    run.meta["prompt_versions"] = versions
    return run
