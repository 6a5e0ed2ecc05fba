"""Sections 1 + 7: ingest throughput against the raw model's encode on the same texts, and
re-ingest of the unchanged corpus (in-process and `rag ingest` in a subprocess)."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.context import (
    FP32_MODEL,
    Context,
    corpus_dict,
    fresh,
    log,
    runtime_with,
    settings_for,
    timer,
)
from bench.corpus import build_corpus
from bench.vectors import RecordingEmbedder, VectorCache, text_key
from rag.adapters.embedder import resolve_model
from rag.config import Settings


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
