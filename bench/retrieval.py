"""Section 2: retrieval latency at each tier (indexes built through IngestService with cached
or synthetic vectors), POST /v1/search in-process, against raw Chroma."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any

from bench.context import Context, corpus_dict, label, runtime_with, settings_for, timer
from bench.corpus import CorpusInfo, build_corpus
from bench.queries import QUESTIONS
from bench.stats import summary
from bench.vectors import BenchEmbedder, Mode, VectorCache

SEARCH_TOP_K = 5
# What the service asks Chroma for: Retriever.search(k=max(top_k, RERANK_POOL=20)) queries
# depth max(4 * k, 20) = 80; the raw baseline asks for the same.
DENSE_DEPTH = 80
# Bump when what an index holds changes (2: sentence vectors beside the chunks): tiers rebuild.
TIER_LAYOUT = 2


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
        raw: list[float] = []
        ids_only: list[float] = []
        for _ in range(ctx.scale.warm_rounds):
            for v in vectors:
                for include, times in (
                    (["documents", "metadatas", "distances"], raw),
                    (["distances"], ids_only),
                ):
                    with timer() as took:
                        collection.query(
                            query_embeddings=[v.tolist()], n_results=DENSE_DEPTH, include=include
                        )
                    times.append(took[0])
        out["query_embedding"] = summary(embed)
        out["hybrid_no_rerank"] = summary(hybrid)
        out["raw_chroma"] = summary(raw)
        out["raw_chroma_ids_only"] = summary(ids_only)
    p50, raw_p50 = out["all"]["p50_ms"], out["raw_chroma"]["p50_ms"]
    out["ratio_p50_to_raw_chroma"] = round(p50 / raw_p50, 2) if raw_p50 else None
    out["how"] = (
        f"POST /v1/search (top_k={SEARCH_TOP_K}) through the app in-process (TestClient: "
        "middleware, route, thread pool, query embedding, dense + lexical + fusion, sentence "
        f"re-ranking); cold = each of {len(questions)} questions the first time (sentence "
        f"embeddings not cached), warm = {ctx.scale.warm_rounds} more rounds; raw_chroma = "
        f"collection.query of the same query embeddings, n_results={DENSE_DEPTH}, "
        "documents+metadatas+distances (a plain vector search returning its passages); "
        "raw_chroma_ids_only = the same with distances only, what the service asks Chroma for "
        "(it reads the rows from its keyword index)"
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
