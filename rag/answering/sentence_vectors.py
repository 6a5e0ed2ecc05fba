"""What retrieved sentences mean, for ranking them: each sentence's embedding on its own, or
its vector in the context of its passage (pooled from the passage's int8 embedding run at
ingest and stored in the keyword index), plus each chunk's sentences and content words.
All of it is cached: the same passages come back for many questions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from rag.adapters.embedder import Embedder
from rag.adapters.lexical import LexicalIndex
from rag.models import Chunk
from rag.spans import SentenceSpan, context_spans, sentence_spans
from rag.text import content_words

if TYPE_CHECKING:
    import numpy as np

SENTENCE_CACHE = 20_000  # sentence vectors kept (~30 MB at 384 dimensions)
CHUNK_CACHE = 5_000  # chunks whose sentences, words and vectors in context are kept

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A bounded map, oldest entry dropped first; safe to share between request threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> V:
        with self._lock:
            while len(self._data) >= self.size:
                self._data.pop(next(iter(self._data)))
            self._data[key] = value
        return value

    def get_many(self, keys: Sequence[K], compute: Callable[[list[K]], Iterable[V]]) -> list[V]:
        """The values of ``keys`` in order; those not kept are computed in one call of
        ``compute`` (on the missing keys, each once) and kept."""
        got: dict[K, V] = {}
        missing = []
        for key in dict.fromkeys(keys):
            known = self.get(key)
            if known is None:
                missing.append(key)
            else:
                got[key] = known
        if missing:
            for key, value in zip(missing, compute(missing), strict=True):
                got[key] = self.put(key, value)
        return [got[k] for k in keys]

    def __len__(self) -> int:
        return len(self._data)


class SentenceVectors:
    def __init__(self, embedder: Embedder, lexical: LexicalIndex) -> None:
        self.embedder = embedder
        self.lexical = lexical
        # keyed by sentence text or chunk id (a chunk id names its content)
        self._vectors: Memo[str, np.ndarray] = Memo(SENTENCE_CACHE)
        self._sentences: Memo[str, list[tuple[SentenceSpan, frozenset[str]]]] = Memo(CHUNK_CACHE)
        self._words: Memo[str, frozenset[str]] = Memo(CHUNK_CACHE)
        self._context: Memo[str, np.ndarray] = Memo(CHUNK_CACHE)
        self._context_text: Memo[str, np.ndarray] = Memo(SENTENCE_CACHE)

    @property
    def pools_in_context(self) -> bool:
        """Are vectors in context available (the int8 embedder)?"""
        return self.embedder.pools_in_context

    def words(self, chunk: Chunk) -> frozenset[str]:
        """The chunk's content words."""
        words = self._words.get(chunk.id)
        if words is None:
            words = self._words.put(chunk.id, frozenset(content_words(chunk.text)))
        return words

    def sentences(self, chunk: Chunk) -> list[tuple[SentenceSpan, frozenset[str]]]:
        """The chunk's sentences, each with its content words."""
        got = self._sentences.get(chunk.id)
        if got is None:
            got = self._sentences.put(
                chunk.id,
                [(span, frozenset(content_words(span.text))) for span in sentence_spans(chunk)],
            )
        return got

    def in_context(self, chunks: list[Chunk]) -> np.ndarray:
        """The chunks' sentence vectors in context, stacked in sentence order: from memory,
        else from the keyword index (written at ingest), else computed now.  A merged
        passage (neighbours joined: id ``a+b``) takes its parts' vectors by sentence text."""
        import numpy as np

        got = {c.id: self._context.get(c.id) for c in chunks}
        wanted = {c.id: len(self.sentences(c)) for c in chunks}
        missing = [cid for cid, v in got.items() if v is None and "+" not in cid]
        if missing:
            for cid, vectors in self.lexical.sentence_vectors(missing).items():
                if vectors.shape[0] == wanted[cid]:
                    got[cid] = self._remember(cid, vectors)
        todo = [c for c in dict((c.id, c) for c in chunks).values() if got[c.id] is None]
        merged = [c for c in todo if "+" in c.id]
        todo = [c for c in todo if "+" not in c.id]
        if todo:
            _, parts = self.embedder.encode_in_context(
                [c.embed_text for c in todo], [context_spans(c) for c in todo]
            )
            for chunk, vectors in zip(todo, parts, strict=True):
                # rounded as the stored ones are (float16), so both give the same ranking
                got[chunk.id] = self._remember(
                    chunk.id, vectors.astype(np.float16).astype(np.float32)
                )
        for chunk in merged:
            texts = [span.text for span, _ in self.sentences(chunk)]
            known = [self._context_text.get(t) for t in texts]
            alone = [t for t, v in zip(texts, known, strict=True) if v is None]
            if alone:  # a sentence across the join: its own embedding stands in
                extra = iter(self.own(alone))
                known = [v if v is not None else next(extra) for v in known]
            rows = [v for v in known if v is not None]
            got[chunk.id] = self._context.put(
                chunk.id, np.vstack(rows) if rows else np.zeros((0, self.embedder.dimension))
            )
        stacked: list[np.ndarray] = [v for c in chunks if (v := got[c.id]) is not None]
        return np.vstack(stacked)

    def _remember(self, chunk_id: str, vectors: np.ndarray) -> np.ndarray:
        """Keep a chunk's vectors in context, by chunk id and by sentence text."""
        chunk_sentences = self._sentences.get(chunk_id) or []
        for (span, _), row in zip(chunk_sentences, vectors, strict=False):
            self._context_text.put(span.text, row)
        return self._context.put(chunk_id, vectors)

    def own(self, texts: list[str]) -> np.ndarray:
        """Embeddings of sentences, cached: the same passages come back for many questions."""
        import numpy as np

        return np.vstack(self._vectors.get_many(texts, self.embedder.encode))
