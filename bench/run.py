"""`make bench`: rag's benchmark suite.  Prints a table and writes bench/results.json.

    python -m bench.run [--scale tiny|default|full] [--work DIR] [--out FILE] [--skip A,B]

Speeds are ratios against baselines measured in the same run (raw SentenceTransformer.encode,
raw Chroma collection.query, fp32 encode), because absolute times vary on shared machines.
See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import logging
import operator
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from bench.corpus import CorpusInfo, build_corpus
from bench.peer import section as bench_peer
from bench.queries import QUESTIONS
from bench.server import ask_load, rss_mb, serve
from bench.stats import summary
from bench.vectors import BenchEmbedder, Mode, RecordingEmbedder, VectorCache, text_key
from rag.adapters.embedder import Embedder, resolve_model, split_backend
from rag.config import Settings
from rag.runtime import Runtime

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
SQUAD_RECORD = Path(__file__).resolve().parent / "squad_recall.json"
SQUAD_DIR = Path("/work/shared/benchmarks/squad")
FP32_MODEL = "all-MiniLM-L6-v2"
INT8_MODEL = FP32_MODEL + "+onnx-int8"
SEARCH_TOP_K = 5
# What the service asks Chroma for: Retriever.search(k=max(top_k, RERANK_POOL=20)) queries
# depth max(4 * k, 20) = 80; the raw baseline asks for the same.
DENSE_DEPTH = 80
# Bump when what an index holds changes (2: sentence vectors beside the chunks): tiers rebuild.
TIER_LAYOUT = 2
LLAMA_MAX_TOKENS = 48  # answers are one line (the backend stops at a newline)
LLAMA_SLOW_S = 60.0
SECTIONS = ("ingest", "int8", "retrieval", "server", "llamacpp", "squad", "peer")


@dataclass(frozen=True)
class Scale:
    name: str
    ingest_chunks: int  # the ingest-throughput corpus
    tiers: tuple[int, ...]  # retrieval tiers (chunks)
    embed_tiers: bool  # embed every tier chunk for real (cached); else synthetic for misses
    questions: int  # distinct questions for search and ask
    warm_rounds: int  # search: rounds over the questions after the cold one
    ask_per_client: int  # /v1/ask requests per client with 8 clients
    llama_questions: int
    int8_texts: int
    squad: bool  # run the two SQuAD evaluations (else: the recorded result)
    cli_reingest: bool = True  # also time `rag ingest` of the unchanged corpus in a subprocess
    llama_threads: tuple[int, ...] = (0, 1)  # RAG_LLAMACPP_THREADS values (0: one per core)


SCALES = {
    "tiny": Scale(
        "tiny", 40, (200, 600), False, 2, 1, 1, 1, 32, False, cli_reingest=False, llama_threads=(1,)
    ),
    "default": Scale("default", 2_000, (10_000, 100_000), False, 30, 3, 5, 3, 256, False),
    "full": Scale("full", 10_000, (10_000, 100_000), True, 40, 3, 5, 8, 1_024, True),
}


@dataclass
class Context:
    scale: Scale
    work: Path
    models: Path
    skip: set[str]
    index_model: str  # the embedder every section but `int8` uses (default: rag's default)
    index_embedder: Embedder
    ingest_index: tuple[Path, Path] | None = None  # (index, corpus) of the ingest tier
    tiers: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # built retrieval tiers
    texts: list[str] = field(default_factory=list)  # what the ingest tier embedded
    errors: list[str] = field(default_factory=list)
    _fp32: Embedder | None = None

    @property
    def fp32(self) -> Embedder:
        """The torch fp32 embedder (loaded on first use: the int8 comparison)."""
        if self._fp32 is None:
            self._fp32 = (
                self.index_embedder if self.index_model == FP32_MODEL else Embedder(FP32_MODEL)
            )
        return self._fp32


def settings_for(ctx: Context, index: Path, corpus: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "index_dir": index,
        "corpus_dir": corpus,
        "models_dir": ctx.models,
        "llm_backend": "extractive",
        "embedding_model": ctx.index_model,
        "embedding_backend": split_backend(ctx.index_model)[1] or "torch",
    }
    values.update(extra)
    return Settings(**values)


def runtime_with(settings: Settings, embedder: Any) -> Runtime:
    """A Runtime whose embedder is one already loaded (the model is loaded once per run;
    model loading is not part of any throughput measured here)."""
    runtime = Runtime(settings)
    runtime.__dict__["embedder"] = embedder
    return runtime


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


# -- 1 + 7: ingest throughput against raw encode, and re-ingest of the unchanged corpus ------
def bench_ingest(ctx: Context) -> dict[str, Any]:
    corpus = build_corpus(
        ctx.work / f"corpus-ingest-{ctx.scale.ingest_chunks}", ctx.scale.ingest_chunks
    )
    model = ctx.index_embedder
    cache = VectorCache(ctx.work, model.model_id)
    # A dry run of the same ingest records exactly the texts it embeds (random vectors, a
    # scratch index), so the raw baseline encodes the very same texts.
    recorder = RecordingEmbedder(model, cache)
    scratch = fresh(ctx.work / "scratch-index")
    runtime_with(settings_for(ctx, scratch, corpus.path), recorder).ingest_service().ingest(
        [corpus.path]
    )
    texts = list(recorder.texts)
    gc.collect()
    shutil.rmtree(scratch, ignore_errors=True)

    batch = Settings().embedding_batch_size
    raw_model = raw_encoder(ctx)

    def raw_encode(part: Sequence[str]) -> float:
        with timer() as took:
            raw_model(list(part))
        return took[0]

    raw_encode(texts[:batch])  # warm-up, both sides
    model.encode(texts[:batch], batch)
    # The baseline brackets the ingest (half before, half after), so a change in the
    # machine's load during the run weighs on both sides alike.
    raw_first = raw_encode(texts[0::2])

    index = fresh(ctx.work / "index-ingest")
    runtime = runtime_with(settings_for(ctx, index, corpus.path), model)
    captured: list[tuple[list[str], np.ndarray]] = []
    original, original_in_context = model.encode, model.encode_in_context

    def capturing(
        batch_texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        vectors = original(batch_texts, batch_size, on_batch)
        captured.append((list(batch_texts), vectors))
        return vectors

    def capturing_in_context(
        batch_texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        vectors, parts = original_in_context(batch_texts, spans, batch_size, on_batch)
        captured.append((list(batch_texts), vectors))
        return vectors, parts

    model.encode = capturing  # type: ignore[method-assign,assignment]
    model.encode_in_context = capturing_in_context  # type: ignore[method-assign,assignment]
    try:
        with timer() as took:
            report = runtime.ingest_service().ingest([corpus.path])
    finally:
        del model.encode
        del model.encode_in_context
    ingest_s = took[0]
    raw_second = raw_encode(texts[1::2])

    with timer() as took:
        again = runtime.ingest_service().ingest([corpus.path])
    reingest_s = took[0]
    cli_s = reingest_cli(ctx, index, corpus.path) if ctx.scale.cli_reingest else None
    embedded = [t for part, _ in captured for t in part]
    cache.put_many(
        [
            (text_key(t), vec)
            for part, vectors in captured
            for t, vec in zip(part, vectors, strict=True)
        ]
    )
    cache.close()
    ctx.ingest_index = (index, corpus.path)
    ctx.texts = texts
    raw_rate = len(texts) / (raw_first + raw_second)
    ingest_rate = report.chunks_embedded / ingest_s
    return {
        "corpus": corpus_dict(corpus),
        "chunks": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "files_indexed": report.files_indexed,
        "files_skipped": len(report.skipped),
        "same_texts_as_baseline": sorted(embedded) == sorted(texts),
        "ingest_s": round(ingest_s, 2),
        "ingest_chunks_per_s": round(ingest_rate, 2),
        "raw_encode_s": round(raw_first + raw_second, 2),
        "raw_encode_chunks_per_s": round(raw_rate, 2),
        "ratio": round(ingest_rate / raw_rate, 3),
        "reingest_s": round(reingest_s, 3),
        "reingest_files_unchanged": again.files_unchanged,
        "reingest_share": round(reingest_s / ingest_s, 4),
        "reingest_cli_s": cli_s,
        "model": model.model_id,
        "how": "IngestService.ingest in-process (model loaded beforehand) vs the raw model "
        "on the same chunk texts (fp32: SentenceTransformer.encode(batch_size=32, normalize); "
        "int8: the onnxruntime session, one text per run, mean pooling, normalize), half "
        "before and half after the ingest; re-ingest: the same call again on the "
        "unchanged corpus; reingest_cli_s: `rag ingest` in a subprocess, model load included",
    }


def raw_encoder(ctx: Context) -> Callable[[list[str]], Any]:
    """The embedding model alone, without rag around it."""
    if ctx.index_model == FP32_MODEL:
        from sentence_transformers import SentenceTransformer

        target, _ = resolve_model(FP32_MODEL)
        raw = SentenceTransformer(target, device="cpu")
        batch = Settings().embedding_batch_size
        return lambda texts: raw.encode(
            texts,
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    session = ctx.index_embedder._int8
    assert session is not None
    return session.encode


def reingest_cli(ctx: Context, index: Path, corpus: Path) -> float | None:
    rag = Path(sys.executable).parent / "rag"
    if not rag.exists():
        return None
    env = {**os.environ, "RAG_CORPUS_DIR": str(corpus), "RAG_MODELS_DIR": str(ctx.models)}
    with timer() as took:
        done = subprocess.run(
            [str(rag), "ingest", str(corpus), "--index", str(index)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        log.warning("rag ingest (re-ingest) failed: %s", done.stderr[-500:])
        return None
    return round(took[0], 2)


def corpus_dict(info: CorpusInfo) -> dict[str, Any]:
    return {"files": info.files, "mb": round(info.bytes / 1e6, 2)}


# -- 8: the int8 ONNX embedder against fp32 --------------------------------------------------
def bench_int8(ctx: Context) -> dict[str, Any]:
    texts = ctx.texts or [f"{q} {q}" for q in QUESTIONS]
    step = max(1, len(texts) // ctx.scale.int8_texts)
    sample = texts[::step][: ctx.scale.int8_texts]
    with timer() as took:
        int8 = Embedder(INT8_MODEL, cache_dir=ctx.models)
    load_s = took[0]
    for model in (ctx.fp32, int8):
        model.encode(sample[:32])
    fp32_s = int8_s = 0.0
    for _ in range(2):  # interleaved, so both see the same machine load
        with timer() as took:
            a = ctx.fp32.encode(sample)
        fp32_s += took[0]
        with timer() as took:
            b = int8.encode(sample)
        int8_s += took[0]
    cosine = (a * b).sum(axis=1)
    return {
        "model_id": int8.model_id,
        "texts": len(sample),
        "load_or_export_s": round(load_s, 2),
        "fp32_chunks_per_s": round(2 * len(sample) / fp32_s, 2),
        "int8_chunks_per_s": round(2 * len(sample) / int8_s, 2),
        "speedup": round(fp32_s / int8_s, 3),
        "cosine_to_fp32_mean": round(float(cosine.mean()), 4),
        "cosine_to_fp32_min": round(float(cosine.min()), 4),
        "how": "Embedder.encode (the ingest path) on ingest-tier chunk texts, fp32 (torch) and "
        "onnx-int8 interleaved, two rounds each",
    }


# -- 2: retrieval latency at each tier, against raw Chroma -----------------------------------
def build_tier(ctx: Context, chunks: int) -> tuple[Path, CorpusInfo, dict[str, Any]]:
    corpus = build_corpus(ctx.work / f"corpus-{chunks}", chunks)
    slug = ctx.index_model.replace("+", "-")
    index = ctx.work / f"index-{chunks}-{slug}"
    cache = VectorCache(ctx.work, ctx.index_embedder.model_id)
    mode: Mode = "real" if ctx.scale.embed_tiers else "synthetic"
    stamp_file = index / ".bench-stamp.json"
    stamp = {"cached_vectors": cache.count(), "mode": mode, "layout": TIER_LAYOUT}
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) != stamp:
        shutil.rmtree(index)  # more real vectors than when it was built: build it again
    stand_in = BenchEmbedder(ctx.index_embedder, cache, mode)
    extra = {"embedding_model": ctx.index_model}
    runtime = runtime_with(settings_for(ctx, index, corpus.path, **extra), stand_in)
    with timer() as took:
        report = runtime.ingest_service().ingest([corpus.path])
    build_s = took[0]
    with timer() as took:
        again = runtime.ingest_service().ingest([corpus.path])
    stamp = {"cached_vectors": cache.count(), "mode": mode, "layout": TIER_LAYOUT}
    stamp_file.write_text(json.dumps(stamp))
    cache.close()
    del runtime
    gc.collect()
    return (
        index,
        corpus,
        {
            "corpus": corpus_dict(corpus),
            "chunks": report.chunks_total,
            "vectors": dict(stand_in.counts),
            "build_s": round(build_s, 1),
            "built_now": report.files_indexed > 0,
            "reingest_s": round(took[0], 3),
            "reingest_files_unchanged": again.files_unchanged,
        },
    )


def bench_search(ctx: Context, index: Path, corpus: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from rag.api.app import create_app

    questions = list(QUESTIONS[: ctx.scale.questions])
    settings = settings_for(ctx, index, corpus, embedding_model=ctx.index_model)
    runtime = runtime_with(settings, ctx.index_embedder)
    app = create_app(settings, runtime)
    out: dict[str, Any] = {}
    with TestClient(app, base_url="http://127.0.0.1") as client:

        def search(question: str) -> tuple[float, float]:
            with timer() as took:
                got = client.post("/v1/search", json={"query": question, "top_k": SEARCH_TOP_K})
            got.raise_for_status()
            return took[0], float(got.json()["retrieval_ms"])

        with timer() as took:
            search("warm up: open the index")
        out["first_query_s"] = round(took[0], 3)
        cold = [search(q) for q in questions]
        warm = [search(q) for _ in range(ctx.scale.warm_rounds) for q in questions]
        out["cold"] = summary([t for t, _ in cold])
        out["warm"] = summary([t for t, _ in warm])
        out["all"] = summary([t for t, _ in cold + warm])
        out["service_retrieval_warm"] = summary([ms / 1000 for _, ms in warm])

        # Parts of the path, in-process: the query's embedding, hybrid search without the
        # sentence re-ranking (dense + lexical + fusion), and raw Chroma.
        retriever = runtime.retriever
        vectors = [ctx.index_embedder.encode_query(q) for q in questions]
        embed = []
        for q in questions:
            with timer() as took:
                ctx.index_embedder.encode_query(q)
            embed.append(took[0])
        hybrid = []
        for _ in range(ctx.scale.warm_rounds):
            for q in questions:
                with timer() as took:
                    retriever.search(q, max(SEARCH_TOP_K, 20), merge=False)
                hybrid.append(took[0])
        collection = runtime.store.collection
        raw = []
        for _ in range(ctx.scale.warm_rounds):
            for v in vectors:
                with timer() as took:
                    collection.query(
                        query_embeddings=[v.tolist()],
                        n_results=DENSE_DEPTH,
                        include=["documents", "metadatas", "distances"],
                    )
                raw.append(took[0])
        out["query_embedding"] = summary(embed)
        out["hybrid_no_rerank"] = summary(hybrid)
        out["raw_chroma"] = summary(raw)
    p50, raw_p50 = out["all"]["p50_ms"], out["raw_chroma"]["p50_ms"]
    out["ratio_p50_to_raw_chroma"] = round(p50 / raw_p50, 2) if raw_p50 else None
    out["how"] = (
        f"POST /v1/search (top_k={SEARCH_TOP_K}) through the app in-process (TestClient: "
        "middleware, route, thread pool, query embedding, dense + lexical + fusion, sentence "
        f"re-ranking); cold = each of {len(questions)} questions the first time (sentence "
        f"embeddings not cached), warm = {ctx.scale.warm_rounds} more rounds; raw_chroma = "
        f"collection.query of the same query embeddings, n_results={DENSE_DEPTH} (what the "
        "service asks for), documents+metadatas+distances"
    )
    del runtime, app
    gc.collect()
    return out


def bench_retrieval(ctx: Context) -> dict[str, Any]:
    tiers: dict[str, Any] = {}
    for chunks in ctx.scale.tiers:
        index, corpus, built = build_tier(ctx, chunks)
        tiers[label(chunks)] = {"index": built, **bench_search(ctx, index, corpus.path)}
        ctx.tiers[label(chunks)] = (index, corpus.path)
    return tiers


def label(chunks: int) -> str:
    return f"{chunks // 1000}k" if chunks >= 1000 and chunks % 1000 == 0 else str(chunks)


# -- 3 + 4 + 5: the HTTP server ---------------------------------------------------------------
def bench_server(ctx: Context) -> dict[str, Any]:
    tiers = ctx.tiers
    if not tiers:
        raise RuntimeError("no retrieval tier index to serve (the retrieval section is skipped)")
    name = label(max(ctx.scale.tiers))
    index, corpus = tiers[name]
    questions = list(QUESTIONS[: ctx.scale.questions])
    env = {
        "RAG_EMBEDDING_MODEL": ctx.index_model,
        "RAG_EMBEDDING_BACKEND": split_backend(ctx.index_model)[1] or "torch",
    }
    out: dict[str, Any] = {"index": name, "model": ctx.index_model}
    with serve(index, corpus, ctx.models, env, ctx.work / "serve.log") as server:
        out["cold_start_s"] = server.cold_start_s
        out["port_open_s"] = server.port_open_s
        out["rss_ready_mb"] = rss_mb(server.proc.pid)
        out["ask_1_client_cold"] = ask_load(server.url, questions, 1, len(questions))
        out["ask_1_client_warm"] = ask_load(server.url, questions, 1, len(questions))
        out["ask_8_clients"] = ask_load(server.url, questions, 8, ctx.scale.ask_per_client)
        out["rss_after_load_mb"] = rss_mb(server.proc.pid)
    if "int8" not in ctx.skip:
        out["other_backend_small_index"] = serve_other_small(ctx)
    out["how"] = (
        "`rag serve --backend extractive` on 127.0.0.1 (free port) over the largest tier's "
        "index; cold start = process start to GET /readyz status ready; POST /v1/ask with "
        "httpx, one connection per client: 1 client over the questions once (cold: sentence "
        "embeddings not cached) and again (warm), then 8 concurrent clients (warm); RSS from "
        "/proc (VmRSS now, VmHWM peak)"
    )
    return out


def serve_other_small(ctx: Context) -> dict[str, Any]:
    """Cold start and RSS of a server with the other embedding backend (torch when the
    bench runs int8, and the reverse), on a small index built with it, for comparison."""
    other = FP32_MODEL if ctx.index_model == INT8_MODEL else INT8_MODEL
    backend = split_backend(other)[1] or "torch"
    corpus = build_corpus(ctx.work / "corpus-small", 300)
    index = fresh(ctx.work / "index-small")
    embedder = ctx.fp32 if other == FP32_MODEL else Embedder(other, cache_dir=ctx.models)
    settings = settings_for(ctx, index, corpus.path)
    settings = settings.model_copy(update={"embedding_model": other, "embedding_backend": backend})
    report = runtime_with(settings, embedder).ingest_service().ingest([corpus.path])
    questions = list(QUESTIONS[: ctx.scale.questions])
    env = {"RAG_EMBEDDING_MODEL": other, "RAG_EMBEDDING_BACKEND": backend}
    with serve(index, corpus.path, ctx.models, env, ctx.work / "serve-small.log") as server:
        out: dict[str, Any] = {
            "model": other,
            "chunks": report.chunks_total,
            "cold_start_s": server.cold_start_s,
        }
        out["ask_1_client_cold"] = ask_load(server.url, questions, 1, len(questions))
        out["rss_after_load_mb"] = rss_mb(server.proc.pid)
    return out


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


# -- 8 (quality): SQuAD recall@5, fp32 against int8 -------------------------------------------
def bench_squad(ctx: Context) -> dict[str, Any]:
    if not ctx.scale.squad:
        if SQUAD_RECORD.is_file():
            return {**json.loads(SQUAD_RECORD.read_text()), "source": "recorded"}
        return {"skipped": "no recorded result; run with BENCH_SCALE=full or --squad"}
    if not (SQUAD_DIR / "golden.jsonl").is_file():
        return {"skipped": f"{SQUAD_DIR} not found"}
    out: dict[str, Any] = {}
    runs: tuple[tuple[str, str], ...] = (("fp32", FP32_MODEL), ("int8", INT8_MODEL))
    if os.environ.get("BENCH_SQUAD") == "int8" and SQUAD_RECORD.is_file():
        # the fp32 evaluation takes ~30 min: keep its recorded result, re-run int8 (~3 min)
        out["fp32"] = json.loads(SQUAD_RECORD.read_text())["fp32"]
        runs = (("int8", INT8_MODEL),)
    for name, model in runs:
        folder = fresh(ctx.work / f"squad-{name}")
        env = {
            **os.environ,
            "RAG_EMBEDDING_MODEL": model,
            "RAG_EMBEDDING_BACKEND": split_backend(model)[1] or "torch",
            "RAG_MODELS_DIR": str(ctx.models),
        }
        command = [str(Path(sys.executable).parent / "rag"), "eval"]
        command += [
            "--corpus",
            str(SQUAD_DIR / "corpus"),
            "--golden",
            str(SQUAD_DIR / "golden.jsonl"),
        ]
        command += ["--backend", "extractive", "--out", str(folder)]
        with timer() as took:
            subprocess.run(command, env=env, check=True, capture_output=True)
        metrics = json.loads((folder / "summary.json").read_text())
        out[name] = {
            "recall@5": find_metric(metrics, "recall@5"),
            "recall@1": find_metric(metrics, "recall@1"),
            "citation_precision": find_metric(metrics, "citation_precision"),
            "contains": find_metric(metrics, "contains"),
            "abstention_auroc": find_metric(metrics, "abstention_auroc"),
            "eval_s": round(took[0], 1),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_head": git_head(),
        }
    out["delta_points"] = round(100 * (out["int8"]["recall@5"] - out["fp32"]["recall@5"]), 2)
    out["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["how"] = "rag eval --corpus squad/corpus --golden squad/golden.jsonl --backend extractive"
    SQUAD_RECORD.write_text(json.dumps(out, indent=2) + "\n")
    return {**out, "source": "measured now"}


def find_metric(tree: Any, name: str) -> float:
    if isinstance(tree, dict):
        if name in tree and isinstance(tree[name], int | float):
            return float(tree[name])
        for value in tree.values():
            with contextlib.suppress(KeyError):
                return find_metric(value, name)
    raise KeyError(name)


# -- the table ----------------------------------------------------------------------------------
def get(tree: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def targets(results: dict[str, Any], scale: Scale) -> list[dict[str, Any]]:
    m = results["measurements"]
    big = label(max(scale.tiers))
    llama = f"threads_{scale.llama_threads[0] or 'cores'}"  # as configured by default
    search = functools.partial(get, m, "retrieval", big)
    srv = functools.partial(get, m, "server")
    llm = functools.partial(get, m, "llamacpp", llama)
    outside = "llamacpp time outside the model"
    # (issue item, metric, measured value, target: a comparison and a number)
    rows: list[tuple[str, str, Any, str]] = [
        ("1", "ingest / raw encode throughput", get(m, "ingest", "ratio"), ">= 0.90"),
        ("2", f"search p50 at {big} (ms, all requests)", search("all", "p50_ms"), "<= 20"),
        ("2", f"search p50 at {big} / raw Chroma p50", search("ratio_p50_to_raw_chroma"), "<= 3"),
        ("2", f"search p99 at {big} (ms, all requests)", search("all", "p99_ms"), "<= 60"),
        ("2", f"search p50 at {big}, warm (ms)", search("warm", "p50_ms"), "<= 20"),
        ("2", f"search p99 at {big}, warm (ms)", search("warm", "p99_ms"), "<= 60"),
        ("3", "POST /v1/ask p50, 1 client, cold (ms)", srv("ask_1_client_cold", "p50_ms"), "<= 60"),
        ("3", "POST /v1/ask p50, 1 client, warm (ms)", srv("ask_1_client_warm", "p50_ms"), "<= 60"),
        ("4", "server RSS after load (MB)", srv("rss_after_load_mb", "VmHWM"), "<= 1536"),
        ("5", "cold start to /readyz (s)", srv("cold_start_s"), "<= 5"),
        ("6", f"{outside}, cold ({llama})", llm("outside_model_share_cold"), "<= 0.05"),
        ("6", f"{outside}, warm ({llama})", llm("outside_model_share_warm"), "<= 0.05"),
        ("7", "re-ingest unchanged / first ingest", get(m, "ingest", "reingest_share"), "<= 0.05"),
        ("8", "int8 / fp32 encode throughput", get(m, "int8", "speedup"), ">= 2.0"),
        ("8", "SQuAD recall@5 int8 - fp32 (points)", get(m, "squad", "delta_points"), ">= -1"),
    ]  # fmt: skip
    compare = {"<=": operator.le, ">=": operator.ge}
    return [
        {"issue_item": item, "metric": name, "value": value, "target": target,
         "met": None if value is None else bool(compare[target[:2]](value, float(target[3:])))}
        for item, name, value, target in rows
    ]  # fmt: skip


def info_rows(results: dict[str, Any]) -> list[tuple[str, Any]]:
    m = results["measurements"]
    rows: list[tuple[str, Any]] = [
        ("ingest chunks/s (raw encode chunks/s)", pair(m, "ingest", "ingest_chunks_per_s",
                                                       "raw_encode_chunks_per_s")),
        ("ingest chunks (embedded)", get(m, "ingest", "chunks_embedded")),
    ]  # fmt: skip
    for tier, data in (get(m, "retrieval") or {}).items():
        if not isinstance(data, dict) or "all" not in data:
            continue
        vectors = "/".join(str(v) for v in data["index"]["vectors"].values())
        rows += [
            (f"search {tier}: chunks; vectors cached/embedded/synthetic",
             f"{data['index']['chunks']}; {vectors}"),
            (f"search {tier}: p50/p99 all (ms)", p50_p99(data["all"])),
            (f"search {tier}: p50/p99 cold (ms)", p50_p99(data["cold"])),
            (f"search {tier}: p50/p99 warm (ms)", p50_p99(data["warm"])),
            (f"search {tier}: hybrid w/o rerank p50/p99 (ms)", p50_p99(data["hybrid_no_rerank"])),
            (f"search {tier}: query embedding p50/p99 (ms)", p50_p99(data["query_embedding"])),
            (f"search {tier}: raw Chroma p50/p99 (ms)", p50_p99(data["raw_chroma"])),
        ]  # fmt: skip
    for key in ("ask_1_client_cold", "ask_1_client_warm", "ask_8_clients"):
        data = get(m, "server", key)
        if data:
            rate = data["requests_per_s"]
            rows.append((f"/v1/ask {key[4:]}: p50/p99 ms, req/s", f"{p50_p99(data)}, {rate}"))
    for name, data in (get(m, "llamacpp") or {}).items():
        if isinstance(data, dict) and "answer" in data:
            rows += [
                (f"llamacpp {name}: prompt tok/s, generated tok/s",
                 f"{data['prompt_tokens_per_s']}, {data['generated_tokens_per_s']}"),
                (f"llamacpp {name}: TTFT p50, answer p50 (ms)",
                 f"{data['ttft']['p50_ms']}, {data['answer']['p50_ms']}"),
                (f"llamacpp {name}: outside-model share cold/warm",
                 f"{data['outside_model_share_cold']} / {data['outside_model_share_warm']}"),
            ]  # fmt: skip
    small = get(m, "server", "other_backend_small_index")
    if small:
        rows.append((
            f"{small['model']} server ({small['chunks']} chunks): cold start s, ask cold p50 "
            "ms, peak MB",
            f"{small['cold_start_s']}, {small['ask_1_client_cold']['p50_ms']}, "
            f"{small['rss_after_load_mb'].get('VmHWM')}",
        ))  # fmt: skip
    rows += [
        ("server RSS ready / after load / peak (MB)",
         f"{get(m, 'server', 'rss_ready_mb', 'VmRSS')} / "
         f"{get(m, 'server', 'rss_after_load_mb', 'VmRSS')} / "
         f"{get(m, 'server', 'rss_after_load_mb', 'VmHWM')}"),
        ("int8 chunks/s (fp32 chunks/s)", pair(m, "int8", "int8_chunks_per_s",
                                                "fp32_chunks_per_s")),
        ("int8 cosine to fp32 mean/min", pair(m, "int8", "cosine_to_fp32_mean",
                                               "cosine_to_fp32_min")),
        ("SQuAD recall@5 fp32 / int8", f"{get(m, 'squad', 'fp32', 'recall@5')} / "
                                       f"{get(m, 'squad', 'int8', 'recall@5')}"),
        ("re-ingest s in-process / `rag ingest` CLI",
         pair(m, "ingest", "reingest_s", "reingest_cli_s")),
        ("SQuAD rag / llama-index default: recall@1, recall@5, citation precision",
         ", ".join(str(get(m, "peer", "ratios_rag_to_peer", k))
                   for k in ("recall@1", "recall@5", "citation_precision"))),
        ("... line-precision, ingest throughput, query p50",
         ", ".join(str(get(m, "peer", "ratios_rag_to_peer", k))
                   for k in ("citation_line_precision", "ingest_throughput", "query_p50"))),
    ]  # fmt: skip
    return rows


def p50_p99(data: dict[str, Any]) -> str:
    return f"{data.get('p50_ms')} / {data.get('p99_ms')}"


def pair(m: dict[str, Any], section: str, a: str, b: str) -> str:
    return f"{get(m, section, a)} ({get(m, section, b)})"


def print_table(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(f"\nrag bench  scale={meta['scale']}  {meta['seconds']:.0f} s  "
          f"load avg {meta['load_before']} -> {meta['load_after']}")  # fmt: skip
    print(f"{'#':<2} {'target':<44} {'value':>10}  {'goal':<8} met")
    for row in results["targets"]:
        value = "-" if row["value"] is None else row["value"]
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"{row['issue_item']:<2} {row['metric']:<44} {value!s:>10}  {row['target']:<8} {met}")
    print("\nmore numbers")
    for name, value in info_rows(results):
        print(f"   {name:<44} {value}")
    for section, data in results["measurements"].items():
        if isinstance(data, dict) and ("error" in data or "skipped" in data):
            print(f"   {section}: {data.get('error') or data.get('skipped')}")


def git_head() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
    return None


def run(scale: Scale, work: Path, out: Path, skip: set[str]) -> int:
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    models = work / "models"
    backend = Settings.model_fields["embedding_backend"].default
    default = INT8_MODEL if backend == "onnx-int8" else FP32_MODEL
    index_model = os.environ.get("BENCH_INDEX_MODEL", default)
    if index_model not in (FP32_MODEL, INT8_MODEL):
        raise SystemExit(f"BENCH_INDEX_MODEL must be {FP32_MODEL} or {INT8_MODEL}")
    index_embedder = Embedder(index_model, backend="torch", cache_dir=models)
    ctx = Context(scale, work, models, skip, index_model, index_embedder)
    load_before = round(os.getloadavg()[0], 2)
    measurements: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[Context], dict[str, Any]]]] = [
        ("ingest", bench_ingest),
        ("int8", bench_int8),
        ("retrieval", bench_retrieval),
        ("server", bench_server),
        ("llamacpp", bench_llamacpp),
        ("squad", bench_squad),
        ("peer", bench_peer),  # llama-index's default pipeline beside rag (bench/peer.py)
    ]
    for name, step in steps:
        if name in skip:
            measurements[name] = {"skipped": "--skip"}
            continue
        log.info("bench: %s ...", name)
        with timer() as took:
            try:
                measurements[name] = step(ctx)
            except Exception as exc:  # one broken section must not hide the others
                traceback.print_exc()
                measurements[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
                ctx.errors.append(name)
        if isinstance(measurements[name], dict):
            measurements[name]["section_s"] = round(took[0], 1)
        log.info("bench: %s done in %.0f s", name, took[0])
    results: dict[str, Any] = {
        "meta": {
            "scale": scale.name,
            "scale_settings": asdict(scale),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "git_head": git_head(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2),
            "work_dir": str(work),
            "index_model": index_model,
            "vectors_note": "retrieval-tier indexes are built through IngestService.ingest "
            "with vectors from an on-disk cache of real embeddings (WORK/vectors-*.sqlite); "
            "chunks with no cached vector get a synthetic one (a cached real vector plus "
            "noise, cosine ~0.8): see retrieval.TIER.index.vectors for the counts. "
            "BENCH_SCALE=full embeds every chunk for real and caches it.",
        },
        "measurements": measurements,
    }
    results["targets"] = targets(results, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    print(f"\nwrote {out}")
    return 1 if ctx.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE") or "default"
    )
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("BENCH_WORK") or ROOT / "bench" / "work")
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "results.json"),
    )
    parser.add_argument(
        "--skip",
        default=os.environ.get("BENCH_SKIP", ""),
        help=f"comma-separated: {','.join(SECTIONS)}",
    )
    parser.add_argument("--squad", action="store_true", help="run the SQuAD evaluations now")
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := skip - set(SECTIONS):
        parser.error(f"unknown section(s) to skip: {', '.join(sorted(unknown))}")
    scale = SCALES[args.scale]
    if tiers := os.environ.get("BENCH_TIERS"):  # e.g. BENCH_TIERS=10000 while developing
        scale = Scale(**{**asdict(scale), "tiers": tuple(int(t) for t in tiers.split(","))})
    if args.squad or os.environ.get("BENCH_SQUAD") in ("1", "int8"):
        scale = Scale(**{**asdict(scale), "squad": True})
    return run(scale, args.work.resolve(), args.out.resolve(), skip)


if __name__ == "__main__":
    sys.exit(main())
