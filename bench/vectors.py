"""Embeddings for the large retrieval tiers: an on-disk cache of real embeddings, and an
embedder stand-in that serves them (or, where none is cached, synthetic vectors).

Embedding the 100k-chunk corpus takes over an hour on two cores, so the retrieval tiers do it
once (``BENCH_SCALE=full``) and keep every vector in ``WORK/vectors-MODEL.sqlite``; later runs
build their indexes from the cache through the real ingest path in minutes.  A chunk with no
cached vector gets a synthetic one: a cached real vector (picked by the chunk's hash) plus
Gaussian noise, renormalised (cosine ~0.8 to it), so the index has the clustered shape of real
embeddings.  The results say how many vectors of each kind every index holds.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag.adapters.embedder import Embedder

Mode = Literal["real", "synthetic"]
NOISE = 0.75  # |noise| relative to a unit anchor: cosine(anchor, synthetic) ~ 1/sqrt(1+0.75^2)
MAX_ANCHORS = 20_000


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


class VectorCache:
    """Real embeddings by text hash, one SQLite file per embedding model."""

    def __init__(self, folder: Path, model_id: str) -> None:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"vectors-{slug}.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS v(key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM v").fetchone()[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            marks = ",".join("?" * len(part))
            sql = f"SELECT key, vec FROM v WHERE key IN ({marks})"
            for key, blob in self._db.execute(sql, part):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO v(key, vec) VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )

    def sample(self, limit: int) -> np.ndarray:
        rows = self._db.execute("SELECT vec FROM v ORDER BY key LIMIT ?", (limit,)).fetchall()
        return np.asarray([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def close(self) -> None:
        self._db.close()


class BenchEmbedder:
    """Stands in for the runtime's Embedder while an index is built: the same tokenizer,
    model id and dimension; ``encode`` answers from the cache, then (mode ``real``) embeds
    the rest and caches it, or (mode ``synthetic``) makes the rest up.  Queries use the model.
    """

    def __init__(self, real: Embedder, cache: VectorCache, mode: Mode) -> None:
        self.real = real
        self.cache = cache
        self.mode = mode
        self.model_id = real.model_id
        self.dimension = real.dimension
        self.counter = real.counter
        self.max_seq_length = real.max_seq_length
        self.special_tokens = real.special_tokens
        self.counts = {"cached": 0, "embedded": 0, "synthetic": 0}
        self._anchors: np.ndarray | None = None

    @property
    def max_chunk_tokens(self) -> int:
        return self.real.max_chunk_tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        known = self.cache.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in known]
        self.counts["cached"] += len(texts) - len(missing)
        if missing and self.mode == "real":
            vectors = self.real.encode([texts[i] for i in missing], batch_size)
            self.cache.put_many([(keys[i], v) for i, v in zip(missing, vectors, strict=True)])
            known.update((keys[i], v) for i, v in zip(missing, vectors, strict=True))
            self.counts["embedded"] += len(missing)
        elif missing:
            for i in missing:
                known[keys[i]] = self._synthetic(keys[i])
            self.counts["synthetic"] += len(missing)
        if on_batch:
            on_batch(len(texts))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([known[k] for k in keys]).astype(np.float32)

    def encode_in_context(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As the int8 Embedder's: chunk vectors as :meth:`encode` gives them, sentence
        vectors made up around them (their values matter no more than synthetic chunks')."""
        vectors = self.encode(texts, batch_size, on_batch)
        parts = []
        for text, vector, ranges in zip(texts, vectors, spans, strict=True):
            rng = np.random.default_rng(int(text_key(text)[:12], 16))
            noise = rng.standard_normal((len(ranges), self.dimension)).astype(np.float32)
            noise *= NOISE / np.linalg.norm(noise, axis=1, keepdims=True).clip(1e-9)
            near = vector[None, :] + noise
            parts.append(near / np.linalg.norm(near, axis=1, keepdims=True).clip(1e-9))
        return vectors, parts

    def encode_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.real.encode_query(text)
        return vector

    def _synthetic(self, key: str) -> np.ndarray:
        if self._anchors is None:
            self._anchors = self.cache.sample(MAX_ANCHORS)
        seed = int(key[:12], 16)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(self.dimension).astype(np.float32)
        noise *= NOISE / np.linalg.norm(noise)
        # with nothing real cached yet: random directions
        vector = self._anchors[seed % len(self._anchors)] + noise if len(self._anchors) else noise
        return (vector / np.linalg.norm(vector)).astype(np.float32)


class RecordingEmbedder(BenchEmbedder):
    """Records what ingest embeds and returns random unit vectors (a dry run's texts)."""

    def __init__(self, real: Embedder, cache: VectorCache) -> None:
        super().__init__(real, cache, "synthetic")
        self.texts: list[str] = []

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        self.texts.extend(texts)
        rng = np.random.default_rng(len(self.texts))
        out = rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
        if on_batch:
            on_batch(len(texts))
        unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)
        return unit
