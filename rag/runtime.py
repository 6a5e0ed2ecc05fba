"""Wiring: builds adapters and services from one Settings object, lazily, once per process."""

from __future__ import annotations

from functools import cached_property

from rag.adapters.embedder import Embedder
from rag.adapters.lexical import LexicalIndex
from rag.adapters.llm.select import Choice, make_backend
from rag.adapters.store import ChromaStore, IndexInfo
from rag.config import Settings
from rag.services.answer import AnswerService
from rag.services.chunker import CHUNKER_VERSION, Chunker
from rag.services.ingest import IngestService, Progress
from rag.services.retrieval import Retriever


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding_model)

    @cached_property
    def chunker(self) -> Chunker:
        limit = min(self.settings.chunk_size, self.embedder.max_chunk_tokens)
        return Chunker(self.embedder.counter, limit, self.settings.chunk_overlap)

    @cached_property
    def index_info(self) -> IndexInfo:
        c = self.chunker
        chunker = f"{CHUNKER_VERSION}/tokens={c.max_tokens}/overlap={c.overlap_lines}"
        return IndexInfo(self.embedder.model_id, self.embedder.dimension, chunker)

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.settings, self.index_info)

    @cached_property
    def lexical(self) -> LexicalIndex:
        return LexicalIndex(self.settings.index_dir / "lexical.sqlite")

    def ingest_service(self, progress: Progress | None = None) -> IngestService:
        return IngestService(
            self.settings, self.embedder, self.store, self.lexical, self.chunker, progress
        )

    @cached_property
    def default_backend(self) -> Choice:
        return make_backend(self.settings, self.settings.llm_backend)

    @cached_property
    def retriever(self) -> Retriever:
        self.store.open()
        if self.lexical.count() != self.store.count():
            self.ingest_service().reconcile_lexical()
        return Retriever(self.settings, self.embedder, self.store, self.lexical)

    @cached_property
    def answer_service(self) -> AnswerService:
        return AnswerService(self.settings, self.embedder, self.retriever, self.default_backend)
