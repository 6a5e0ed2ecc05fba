"""Chroma's HNSW search breadth (RAG_HNSW_EF_SEARCH) on new and existing collections."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest

from rag.adapters.embedder import Embedder
from rag.errors import IndexMismatchError
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
    hnsw = first.store.collection.configuration["hnsw"]
    assert (hnsw["ef_search"], hnsw["space"]) == (123, "cosine")  # not Chroma's l2
    chunk = first.store.all_chunks()[0]
    vector = first.embedder.encode([chunk.embed_text])[0]
    (best,) = first.store.query(vector, 1)
    assert best.chunk.id == chunk.id and best.score > 0.99  # 1 - cosine distance

    later = make_runtime(tmp_path, embedder, hnsw_ef_search=250)
    later.store.open()
    assert _ef_on_disk(later.settings.chroma_path, name) == 250
    hits = later.retriever.search("Where did Putin and Kim sign the agreement?", 3).passages
    assert hits and hits[0].chunk.path.endswith(".txt")


def test_an_index_measuring_another_distance_is_refused(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    name = runtime.store.collection.name
    client = runtime.store._client  # as if an older build had made it so
    metadata = dict(client.get_collection(name).metadata or {})
    metadata.pop("hnsw:space")
    client.delete_collection(name)
    client.create_collection(name, metadata=metadata, configuration={"hnsw": {"space": "l2"}})
    with pytest.raises(IndexMismatchError) as caught:
        make_runtime(tmp_path, embedder).store.open()
    assert "l2" in caught.value.message and "--rebuild" in caught.value.hint
