"""Chroma: the vector store.  Embedded (PersistentClient in the index folder) or a server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rag.adapters.faults import disk_full_error, free_bytes
from rag.config import Settings
from rag.errors import ConfigError, IndexMismatchError, IndexMissingError
from rag.models import Chunk, Passage

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Free space a batch needs before Chroma writes it: this many times its text, vectors and
# metadata (its log, its segment and the HNSW files), and at least MIN_ROOM.
ROOM_FACTOR = 4
MIN_ROOM = 1 << 20


SPACE = "cosine"  # scores are 1 - distance: cosine similarity


@dataclass(frozen=True)
class IndexInfo:
    """What an index was built with; a mismatch means its vectors are not comparable."""

    embedding_model: str
    embedding_dim: int
    chunker: str

    def as_metadata(self) -> dict[str, Any]:
        return {
            "hnsw:space": SPACE,
            "embedding_model": self.embedding_model,
            "embedding_dim": self.embedding_dim,
            "chunker": self.chunker,
        }


def _client(settings: Settings) -> Any:
    """Chroma's client: an HttpClient when RAG_CHROMA_URL is set (every component of rag goes
    through here), else a PersistentClient in the index folder."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"RAG_CHROMA_URL {settings.chroma_url!r} is not an http(s) URL",
                "use e.g. http://127.0.0.1:8001",
            )
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 80),
                ssl=url.scheme == "https",
                headers=settings.chroma_headers() or None,
                settings=chroma_settings,
            )
        except Exception as exc:
            raise _server_error(settings, exc) from None
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def _server_error(settings: Settings, exc: Exception) -> ConfigError:
    """Why the Chroma server could not be used, without echoing any credentials."""
    text = str(exc)
    token = settings.chroma_auth_token
    if token is not None and token.get_secret_value():
        text = text.replace(token.get_secret_value(), "***")
    if any(s in text for s in ("401", "403", "Unauthorized", "Forbidden", "authenticat")):
        return ConfigError(
            f"the Chroma server at {settings.chroma_url} refused the credentials: {text[:200]}",
            "set RAG_CHROMA_AUTH_TOKEN (and RAG_CHROMA_AUTH_HEADER if the server expects "
            "another header than Authorization)",
        )
    return ConfigError(
        f"cannot reach the Chroma server at {settings.chroma_url}: {text[:200]}",
        "start it with `chroma run --path data/chroma-server --host 127.0.0.1 --port 8001`, "
        "or unset RAG_CHROMA_URL",
    )


def release_clients() -> None:
    """Close every embedded Chroma this process opened (before its folder is moved aside)."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
    except Exception as exc:  # an older or newer Chroma without it: the folder still moves
        log.warning("could not close Chroma's clients: %s", exc)


def _hnsw(collection: Any) -> dict[str, Any]:
    """A collection's HNSW configuration (empty: this Chroma does not say)."""
    try:
        return dict((collection.configuration or {}).get("hnsw") or {})
    except Exception:
        return {}


class ChromaStore:
    """One collection of chunks with their line anchors as metadata."""

    def __init__(self, settings: Settings, expected: IndexInfo, name: str | None = None) -> None:
        self.settings = settings
        self.expected = expected
        self.name = name or settings.collection
        self.missing: IndexMissingError | None = None  # what to raise when it does not exist
        self._client = _client(settings)
        self._collection: Any = None
        self._exact: tuple[list[Chunk], Any] | None = None  # cache for exact search
        self.batch_size = max(1, int(self._client.get_max_batch_size()))

    # -- lifecycle -------------------------------------------------------
    def exists(self) -> bool:
        try:
            self._client.get_collection(self.name)
        except Exception:
            return False
        return True

    def open(self, create: bool = False) -> None:
        """Open the collection, checking it was built like the current settings say."""
        if self._collection is not None:
            return
        name = self.name
        if not self.exists():
            if not create:
                if self.missing is not None:
                    raise self.missing
                raise IndexMissingError(
                    f"no index found at {self.where}",
                    "build it with `rag ingest` (or `make run`, which ingests data/corpus)",
                )
            self._collection = self._client.create_collection(
                name,
                metadata=self.expected.as_metadata(),
                # the space again: a configuration given without it makes Chroma use l2
                configuration={"hnsw": {"space": SPACE, "ef_search": self.settings.hnsw_ef_search}},
                embedding_function=None,
            )
            return
        collection = self._client.get_collection(name, embedding_function=None)
        meta = collection.metadata or {}
        built = (meta.get("embedding_model"), meta.get("embedding_dim"), meta.get("chunker"))
        hnsw = _hnsw(collection)
        space = hnsw.get("space")
        if space not in (None, SPACE):
            raise IndexMismatchError(
                f"the index at {self.where} measures {space} distance, not {SPACE}: its "
                "scores would not be similarities",
                "rebuild it with `rag ingest --rebuild`",
            )
        wanted = (self.expected.embedding_model, self.expected.embedding_dim, self.expected.chunker)
        if built != wanted:
            raise IndexMismatchError(
                f"the index at {self.where} was built with embedding model {built[0]!r} "
                f"(dim {built[1]}, chunker {built[2]!r}), but the settings ask for "
                f"{wanted[0]!r} (dim {wanted[1]}, chunker {wanted[2]!r})",
                "rebuild it with `rag ingest --rebuild`, or set RAG_EMBEDDING_MODEL / "
                "RAG_CHUNK_SIZE / RAG_CHUNK_OVERLAP back to what the index was built with",
            )
        self._collection = collection
        self._search_with_ef(collection, hnsw.get("ef_search"))

    def _search_with_ef(self, collection: Any, have: Any) -> None:
        """Give an existing collection (its ef_search ``have``) the configured ef_search (one
        built before the setting, or with another value); it takes effect before the graph is
        first loaded."""
        wanted = self.settings.hnsw_ef_search
        try:
            if have is not None and have != wanted:
                collection.modify(configuration={"hnsw": {"ef_search": wanted}})
                log.info("%s: HNSW ef_search %s -> %s", self.where, have, wanted)
        except Exception as exc:  # a Chroma without collection configuration: its default
            log.warning("could not set HNSW ef_search on %s: %s", self.where, exc)

    def drop(self) -> None:
        """Delete the whole collection (for --rebuild)."""
        if self.exists():
            self._client.delete_collection(self.name)
        self._collection = None
        self._exact = None

    def forget_cache(self) -> None:
        """Drop what was cached of the collection's contents (another process wrote it)."""
        self._exact = None

    @property
    def where(self) -> str:
        if self.settings.chroma_url:
            return f"{self.settings.chroma_url} (collection {self.name!r})"
        return f"{self.settings.chroma_path} (collection {self.name!r})"

    @property
    def collection(self) -> Any:
        if self._collection is None:
            self.open()
        return self._collection

    # -- writes ----------------------------------------------------------
    def _check_room(self, part: Sequence[Chunk], dimension: int) -> None:
        """Refuse to start a batch without room for it: chromadb's Rust bindings can wait
        forever when the disk fills in the middle of an upsert (a futex wait in
        ``_upsert``; tests/indexing/test_disk_full.py met it with 150 KiB left, and with 16),
        where a full disk found before the write is a clear error and nothing half-written."""
        if self.settings.chroma_url:
            return  # the server's disk, not ours
        payload = sum(len(c.text.encode("utf-8")) + 4 * dimension + 512 for c in part)
        free = free_bytes(self.settings.chroma_path)
        if free is not None and free < max(MIN_ROOM, ROOM_FACTOR * payload):
            raise disk_full_error(self.settings.index_dir)

    def upsert(
        self,
        chunks: Sequence[Chunk],
        embeddings: np.ndarray,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._exact = None
        for i in range(0, len(chunks), self.batch_size):
            part = chunks[i : i + self.batch_size]
            self._check_room(part, int(embeddings.shape[1]))
            self.collection.upsert(
                ids=[c.id for c in part],
                embeddings=embeddings[i : i + len(part)],
                documents=[c.text for c in part],
                metadatas=[_metadata(c) for c in part],
            )
            if on_batch:
                on_batch(len(part))

    def delete(self, ids: Sequence[str]) -> None:
        self._exact = None
        for i in range(0, len(ids), self.batch_size):
            self.collection.delete(ids=list(ids[i : i + self.batch_size]))

    def ids_for_path(self, path: str) -> list[str]:
        got = self.collection.get(where={"path": path}, include=[])
        return list(got["ids"])

    # -- reads -----------------------------------------------------------
    def all_ids(self) -> set[str]:
        out: set[str] = set()
        total, page = self.count(), 20000
        for offset in range(0, total, page):
            out.update(self.collection.get(include=[], limit=page, offset=offset)["ids"])
        return out

    def embeddings_for(self, ids: Sequence[str]) -> dict[str, Any]:
        """The stored vectors of those of ``ids`` the collection holds (to reuse, not re-embed)."""
        out: dict[str, Any] = {}
        for i in range(0, len(ids), self.batch_size):
            part = list(ids[i : i + self.batch_size])
            got = self.collection.get(ids=part, include=["embeddings"])
            out.update(zip(got["ids"], got["embeddings"], strict=True))
        return out

    def chunks_for(self, ids: Sequence[str]) -> list[Chunk]:
        out: list[Chunk] = []
        for i in range(0, len(ids), self.batch_size):
            got = self.collection.get(
                ids=list(ids[i : i + self.batch_size]), include=["documents", "metadatas"]
            )
            out.extend(
                _chunk(c, d, m)
                for c, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            )
        return out

    def ids_by_path(self) -> dict[str, list[str]]:
        """Every chunk id, grouped by document path, in line order."""
        rows: dict[str, list[tuple[int, str]]] = {}
        total, page = self.count(), 20000
        for offset in range(0, total, page):
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
                rows.setdefault(str(meta["path"]), []).append((int(meta["start_line"]), cid))
        return {path: [cid for _, cid in sorted(pairs)] for path, pairs in rows.items()}

    def count(self) -> int:
        return int(self.collection.count())

    def query(
        self, embedding: np.ndarray, k: int, paths: Sequence[str] | None = None
    ) -> list[Passage]:
        """The ``k`` chunks most similar to ``embedding`` (cosine), best first.

        ``paths``: only chunks of these documents (None: all; empty: none).
        """
        if paths is not None and not paths:
            return []
        if self.settings.exact_search:
            return self._exact_query(embedding, k, paths)
        # No count() first: Chroma returns what there is when asked for more (and counting
        # 100k rows took 10-23 ms per query).
        result = self.collection.query(
            query_embeddings=[embedding],
            n_results=k,
            where=_of_paths(paths),
            include=["documents", "metadatas", "distances"],
        )
        # A chunk deleted while the query ran (a document removed or replaced meanwhile)
        # can come back from the vector index without its row: it is no longer indexed.
        return [
            Passage(chunk=_chunk(cid, doc, meta), score=round(1.0 - float(dist), 6))
            for cid, doc, meta, dist in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
            if meta is not None and doc is not None
        ]

    def nearest(
        self, embedding: np.ndarray, k: int, paths: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ids and scores of :meth:`query`, without the chunks' rows: Chroma's HNSW
        search alone takes ~1.7 ms at 100k chunks, with the 80 rows' metadata ~4.4 ms; the
        retriever reads the rows from the keyword index, which holds every chunk."""
        if paths is not None and not paths:
            return []
        if self.settings.exact_search:
            return [(p.chunk.id, p.score) for p in self._exact_query(embedding, k, paths)]
        result = self.collection.query(
            query_embeddings=[embedding], n_results=k, where=_of_paths(paths), include=["distances"]
        )
        return [
            (cid, round(1.0 - float(dist), 6))
            for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk in the collection (for rebuilding the lexical index)."""
        out: list[Chunk] = []
        total, page = self.count(), 5000
        for offset in range(0, total, page):
            got = self.collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            out.extend(
                _chunk(i, d, m)
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            )
        return out

    def _exact_query(
        self, embedding: np.ndarray, k: int, paths: Sequence[str] | None = None
    ) -> list[Passage]:
        """Brute-force search: deterministic (HNSW is not, across rebuilds); ties by id."""
        import numpy as np

        if self._exact is None:
            got = self.collection.get(include=["embeddings", "documents", "metadatas"])
            order = sorted(range(len(got["ids"])), key=lambda i: got["ids"][i])
            chunks = [
                _chunk(got["ids"][i], got["documents"][i], got["metadatas"][i]) for i in order
            ]
            matrix = np.asarray([got["embeddings"][i] for i in order], dtype=np.float32)
            self._exact = (chunks, matrix.reshape(len(chunks), -1))
        chunks, matrix = self._exact
        if not chunks:
            return []
        scores = np.round(matrix @ np.asarray(embedding, dtype=np.float32), 6)
        if paths is not None:
            allowed = set(paths)
            mask = np.asarray([c.path in allowed for c in chunks])
            scores = np.where(mask, scores, -np.inf)
            k = min(k, int(mask.sum()))
        top = np.lexsort((np.arange(len(chunks)), -scores))[:k]  # stable: equal scores by id
        return [Passage(chunk=chunks[i], score=round(float(scores[i]), 6)) for i in top]


def _of_paths(paths: Sequence[str] | None) -> dict[str, Any] | None:
    """Chroma's filter for chunks of these documents (None: all)."""
    if paths is None:
        return None
    return {"path": paths[0]} if len(paths) == 1 else {"path": {"$in": list(paths)}}


def _metadata(c: Chunk) -> dict[str, Any]:
    """A chunk's anchor as Chroma metadata (whose values cannot be None: absent keys)."""
    meta: dict[str, Any] = {
        "path": c.path,
        "start_line": c.start_line,
        "end_line": c.end_line,
        "start_char": c.start_char,
        "end_char": c.end_char,
    }
    if c.heading:
        meta["heading"] = c.heading
    if c.page is not None:
        meta["page"] = c.page
    if c.page_first_line is not None:
        meta["page_first_line"] = c.page_first_line
    return meta


def _chunk(cid: str, doc: str | None, meta: Any) -> Chunk:
    page, first = meta.get("page"), meta.get("page_first_line")
    return Chunk(
        id=cid,
        path=str(meta["path"]),
        start_line=int(meta["start_line"]),
        end_line=int(meta["end_line"]),
        start_char=int(meta["start_char"]),
        end_char=int(meta["end_char"]),
        text=doc or "",
        heading=str(meta.get("heading") or ""),
        page=None if page is None else int(page),
        page_first_line=None if first is None else int(first),
    )
