"""Section 6: the llamacpp backend in-process: load, prompt and generation speed from
llama.cpp's own counters, and the share of an answer's time spent outside the model."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from bench.context import ROOT, Context, runtime_with, settings_for, timer
from bench.queries import QUESTIONS
from bench.stats import summary

LLAMA_MAX_TOKENS = 48  # answers are one line (the backend stops at a newline)
LLAMA_SLOW_S = 60.0


# -- 6: the llamacpp backend ------------------------------------------------------------------
def bench_llamacpp(ctx: Context) -> dict[str, Any]:
    """The backend as configured (threads = cores), and with RAG_LLAMACPP_THREADS=1."""
    out: dict[str, Any] = {}
    for threads in ctx.scale.llama_threads:
        out[f"threads_{threads or 'cores'}"] = llamacpp_run(ctx, threads)
    return out


def llamacpp_run(ctx: Context, threads: int) -> dict[str, Any]:
    import llama_cpp

    if ctx.ingest_index is None:
        raise RuntimeError("needs the ingest tier's index (the ingest section is skipped)")
    index, corpus = ctx.ingest_index
    extra: dict[str, Any] = {"llm_backend": "llamacpp", "abstain_below": 0.0, "min_relevance": -1.0}
    extra["llamacpp_threads"] = threads
    extra["max_tokens"] = LLAMA_MAX_TOKENS
    packaged = ROOT / "data" / "models" / "gemma3-270m-q4_k_m.gguf"
    if packaged.is_file():  # already assembled by `make run`: no second 250 MB copy
        extra["llamacpp_model_path"] = packaged
    runtime = runtime_with(settings_for(ctx, index, corpus, **extra), ctx.index_embedder)
    with timer() as took:
        service = runtime.answer_service
        choice = service.default
    load_s = took[0]
    llm: Any = choice.llm
    records: list[dict[str, float]] = []
    original = llm.stream
    native = llm._llm._ctx.ctx

    def timed(prompt: Any, max_tokens: int) -> Iterator[str]:
        record: dict[str, float] = {"start": time.perf_counter()}
        llama_cpp.llama_perf_context_reset(native)
        pieces = 0
        for piece in original(prompt, max_tokens):
            if not pieces:
                record["first"] = time.perf_counter()
            pieces += 1
            yield piece
        record["end"] = time.perf_counter()
        perf = llama_cpp.llama_perf_context(native)
        record.update(
            pieces=pieces,
            n_p_eval=perf.n_p_eval,
            t_p_eval_ms=perf.t_p_eval_ms,
            n_eval=perf.n_eval,
            t_eval_ms=perf.t_eval_ms,
        )
        records.append(record)

    llm.stream = timed
    # Questions that reach the model (a small index may not be about some of them at all:
    # those are answered "not in the documents" before any generation).
    questions: list[str] = []
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for q in QUESTIONS:
        if len(questions) >= ctx.scale.llama_questions:
            break
        records.clear()
        with timer() as took:
            service.ask(q)
        if records:
            questions.append(q)
            runs["cold"].append({**records[0], "total": took[0]})
            if took[0] > LLAMA_SLOW_S:  # a starved configuration: one answer tells enough
                break
    for q in questions:
        records.clear()
        with timer() as took:
            service.ask(q)
        if records:
            runs["warm"].append({**records[0], "total": took[0]})
    del llm.stream
    cold = runs["cold"]

    def share(rows: list[dict[str, float]]) -> float | None:
        total = sum(r["total"] for r in rows)
        model = sum(r["end"] - r["start"] for r in rows)
        return round((total - model) / total, 4) if total else None

    p_tok, p_ms = sum(r["n_p_eval"] for r in cold), sum(r["t_p_eval_ms"] for r in cold)
    g_tok, g_ms = sum(r["n_eval"] for r in cold), sum(r["t_eval_ms"] for r in cold)
    return {
        "model": choice.model,
        "threads": threads or os.cpu_count(),
        "load_s": round(load_s, 2),
        "questions": len(questions),
        "answers_generated": len(cold),
        "prompt_tokens_mean": round(p_tok / len(cold), 1) if cold else None,
        "prompt_tokens_per_s": round(p_tok / p_ms * 1000, 1) if p_ms else None,
        "generated_tokens_mean": round(g_tok / len(cold), 1) if cold else None,
        "generated_tokens_per_s": round(g_tok / g_ms * 1000, 1) if g_ms else None,
        "ttft": summary([r["first"] - r["start"] for r in cold if "first" in r]),
        "answer": summary([r["total"] for r in cold]),
        "outside_model_share_cold": share(cold),
        "outside_model_share_warm": share(runs["warm"]),
        "how": "AnswerService.ask in-process on the ingest tier's index (real embeddings), "
        f"abstention off so every question reaches the model, max_tokens {LLAMA_MAX_TOKENS}; "
        "model time = the backend's stream() from call to last token; token counts and "
        "times from llama.cpp's own perf counters; cold = first ask of each question, "
        "warm = the same questions again (sentence embeddings cached)",
    }
