"""Chroma's HNSW search breadth (RAG_HNSW_EF_SEARCH) on new and existing collections."""

from __future__ import annotations

from pathlib import Path

import chromadb

from rag.adapters.embedder import Embedder
from tests.conftest import make_runtime


def _ef_on_disk(runtime_path: Path, name: str) -> int:
    """ef_search as Chroma stored it, read by a client of its own."""
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=str(runtime_path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return int(client.get_collection(name).configuration["hnsw"]["ef_search"])


def test_ef_search_is_set_on_new_collections_and_moved_on_existing_ones(
    tmp_path: Path, embedder: Embedder
) -> None:
    first = make_runtime(tmp_path, embedder, hnsw_ef_search=123)
    first.ingest_service().ingest()
    name = first.store.collection.name
    assert first.store.collection.configuration["hnsw"]["ef_search"] == 123

    later = make_runtime(tmp_path, embedder, hnsw_ef_search=250)
    later.store.open()
    assert _ef_on_disk(later.settings.chroma_path, name) == 250
    hits = later.retriever.search("Where did Putin and Kim sign the agreement?", 3).passages
    assert hits and hits[0].chunk.path.endswith(".txt")
