"""The Chroma collection and keyword index of each generation of the index, opened once and
shared by ingest, recovery and retrieval."""

from __future__ import annotations

import threading

from rag.adapters.lexical import LexicalIndex
from rag.adapters.manifest import Generation
from rag.adapters.store import ChromaStore, IndexInfo
from rag.config import Settings


class GenerationStores:
    """The Chroma collection and keyword index of each generation, opened once and shared."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: dict[int, tuple[ChromaStore, LexicalIndex]] = {}
        self._lock = threading.Lock()

    def __call__(self, gen: Generation) -> tuple[ChromaStore, LexicalIndex]:
        with self._lock:
            if gen.id not in self._open:
                info = IndexInfo(gen.embedding_model, gen.embedding_dim, gen.chunker)
                store = ChromaStore(self.settings, info, gen.collection)
                lexical = LexicalIndex(self.settings.index_dir / gen.lexical)
                self._open[gen.id] = (store, lexical)
            return self._open[gen.id]

    def forget_all(self) -> None:
        """Stop handing out any generation's objects (their files are being moved)."""
        with self._lock:
            self._open.clear()

    def forget(self, gen: Generation) -> None:
        """Stop handing out this generation's objects.  Not closed here: a query still
        running on them finishes (an unlinked SQLite file stays readable while open)."""
        with self._lock:
            self._open.pop(gen.id, None)
