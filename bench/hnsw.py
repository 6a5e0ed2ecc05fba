"""HNSW against exact search, for the 1M section (bench/million.py): what Chroma's approximate
graph costs in recall at each tier, and what its search breadth (ef_search) buys back.

Two kinds of vectors are measured, because the tiers' own are a poor stand-in here:

- **the tier's own** (``tier_recall``): synthetic chunks are a cached real vector plus
  isotropic noise (bench/vectors.py), hundreds of copies around each of ~2,300 anchors.  That
  star shape is HNSW's worst case: each copy's nearest neighbour is its anchor, the graph
  keeps few links among the copies, and most copies cannot be reached at all (a copy asked
  for with its own vector comes back first for 98% of 10k chunks, 89% of 100k, 22% of 1M,
  at ef_search 400: results.json's million section).
- **a stand-in with the real embeddings' geometry** (``ef_sweep``): as many vectors as the
  tier, drawn from a Gaussian fitted to the cached real embeddings (their mean and
  covariance), in a throwaway collection built with Chroma's defaults; recall@10 and query
  time for each ef_search, each in a fresh process (ef_search applies when the graph is
  loaded).  Real embeddings lie on fewer dimensions than a full-covariance Gaussian, so its
  recall is a floor for real text, not a forecast.

Exact = cosine over every vector in numpy; the questions are the bench's real ones.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.context import ROOT, Context, runtime_with, settings_for, timer
from bench.queries import QUESTIONS
from bench.retrieval import DENSE_DEPTH
from bench.vectors import VectorCache

RECALL_AT = 10
RECALL_QUESTIONS = 30
EF_SEARCH = (100, 200, 400, 800)
STAND_IN = "stand-in"  # the throwaway collection's name


def _read_all(collection: Any) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for offset in range(0, collection.count(), 20_000):
        got = collection.get(include=["embeddings"], limit=20_000, offset=offset)
        ids += got["ids"]
        parts.append(np.asarray(got["embeddings"], dtype=np.float32))
    matrix = np.vstack(parts)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-9)
    return ids, matrix


def _questions(ctx: Context) -> np.ndarray:
    texts = QUESTIONS[:RECALL_QUESTIONS]
    return np.stack([ctx.index_embedder.encode_query(q).astype(np.float32) for q in texts])


def _recall(collection: Any, vectors: np.ndarray, exact: list[set[str]]) -> dict[str, Any]:
    hits, took = [], []
    for vector, best in zip(vectors, exact, strict=True):
        collection.query(query_embeddings=[vector.tolist()], n_results=DENSE_DEPTH)  # warm
        start = time.perf_counter()
        got = collection.query(query_embeddings=[vector.tolist()], n_results=DENSE_DEPTH)
        took.append((time.perf_counter() - start) * 1000)
        hits.append(len(best & set(got["ids"][0][:RECALL_AT])) / RECALL_AT)
    return {
        f"recall_at_{RECALL_AT}": round(float(np.mean(hits)), 4),
        "min": round(float(np.min(hits)), 2),
        "query_p50_ms": round(float(np.median(took)), 2),
    }


def _exact(ids: list[str], matrix: np.ndarray, vectors: np.ndarray) -> list[set[str]]:
    return [{ids[i] for i in np.argsort(-(matrix @ v))[:RECALL_AT]} for v in vectors]


def tier_recall(ctx: Context, index: Path, corpus: Path) -> dict[str, Any]:
    """recall@10 of the tier's own collection at the configured ef_search, and how often a
    stored vector finds itself first (unreachable copies: see the module's docstring)."""
    settings = settings_for(ctx, index, corpus, embedding_model=ctx.index_model)
    runtime = runtime_with(settings, ctx.index_embedder)
    collection = runtime.store.collection
    with timer() as took:
        ids, matrix = _read_all(collection)
    vectors = _questions(ctx)
    out = _recall(collection, vectors, _exact(ids, matrix, vectors))
    rng = np.random.default_rng(0)
    sample = rng.choice(len(ids), size=min(100, len(ids)), replace=False)
    found = sum(
        collection.query(query_embeddings=[matrix[i].tolist()], n_results=1)["ids"][0][0]
        == ids[i]
        for i in sample
    )
    out.update(
        {
            "finds_itself_first": round(found / len(sample), 3),
            "ef_search": settings.hnsw_ef_search,
            "questions": len(vectors),
            "vectors": len(ids),
            "read_vectors_s": round(took[0], 1),
        }
    )
    del runtime, matrix
    gc.collect()
    return out


def ef_sweep(ctx: Context, size: int) -> dict[str, Any]:
    """The stand-in collection of ``size`` vectors, recall@10 and query p50 per ef_search."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    real = VectorCache(ctx.work, ctx.index_embedder.model_id).sample(20_000)
    if len(real) < 2:
        return {"skipped": f"{len(real)} cached real vectors: too few to fit a Gaussian"}
    mean, cov = real.mean(axis=0), np.cov(real.T)
    root = np.linalg.cholesky(cov + 1e-6 * np.eye(cov.shape[0]))
    folder = ctx.work / f"hnsw-stand-in-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    client = chromadb.PersistentClient(
        path=str(folder), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.create_collection(
        STAND_IN, metadata={"hnsw:space": "cosine"}, embedding_function=None
    )
    rng = np.random.default_rng(0)
    matrix = np.empty((size, real.shape[1]), dtype=np.float32)
    with timer() as took:
        for start in range(0, size, 5000):
            n = min(5000, size - start)
            part = (mean + rng.standard_normal((n, real.shape[1])) @ root.T).astype(np.float32)
            part /= np.linalg.norm(part, axis=1, keepdims=True)
            matrix[start : start + n] = part
            ids = [f"v{i}" for i in range(start, start + n)]
            collection.add(ids=ids, embeddings=part)  # type: ignore[arg-type]
    vectors = _questions(ctx)
    exact = _exact([f"v{i}" for i in range(size)], matrix, vectors)
    del client, collection, matrix
    gc.collect()
    np.save(folder / "questions.npy", vectors)
    (folder / "exact.json").write_text(json.dumps([sorted(s) for s in exact]))
    out: dict[str, Any] = {
        "vectors": size,
        "real_vectors_fitted": len(real),
        "build_s": round(took[0], 1),
    }
    for ef in EF_SEARCH:
        done = subprocess.run(
            [sys.executable, "-m", "bench.hnsw", str(folder), str(ef)],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
        out[f"ef_{ef}"] = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(folder, ignore_errors=True)
    return out


def _measure(folder: Path, ef: int) -> dict[str, Any]:
    """In a fresh process: ef_search set before the graph is loaded, then the questions."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=str(folder), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_collection(STAND_IN)
    collection.modify(configuration={"hnsw": {"ef_search": ef}})
    vectors = np.load(folder / "questions.npy")
    exact = [set(s) for s in json.loads((folder / "exact.json").read_text())]
    return _recall(collection, vectors, exact)


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), int(sys.argv[2]))))
