"""Wiring: builds adapters and services from one Settings object, lazily, once per process.

Readers (retrieval, answers) use the *active* generation of the index; a writer builds into
it or beside it and calls :meth:`Runtime.refresh` when a new generation becomes active.
:meth:`Runtime.follow` notices what *other* processes wrote (API workers sharing an index
folder and a Chroma server, or a `rag ingest` beside a server).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from functools import cached_property

from rag.adapters.embedder import Embedder
from rag.adapters.generations import GenerationStores
from rag.adapters.lexical import LexicalIndex
from rag.adapters.llm.select import Choice, make_backend
from rag.adapters.lock import IndexLock
from rag.adapters.manifest import LEGACY_FILE, Generation, Manifest, ManifestDB
from rag.adapters.store import ChromaStore, IndexInfo
from rag.answering.answer import AnswerService
from rag.answering.retrieval import Retriever
from rag.config import Settings
from rag.errors import IndexLockedError, IndexMismatchError, IndexMissingError, RagError
from rag.indexing.chunker import CHUNKER_VERSION, Chunker
from rag.indexing.ingest import IngestService, Progress
from rag.indexing.integrity import damage, damaged_error

log = logging.getLogger(__name__)

FOLLOW_RECHECK = 5.0  # seconds after which follow() reads the revision even if stat says same
# What a refresh forgets: everything that depends on which generation is active.
_READ_SIDE = ("generation", "store", "lexical", "query_embedder", "retriever", "answer_service")


class Runtime:
    """Everything rag is made of, built from ``settings`` when first used, then kept.

    Each part (``embedder``, ``chunker``, ``manifest``, ``stores``, ``store``, ``lexical``,
    ``retriever``, ``answer_service``, ...) is a cached property: :meth:`built` says whether
    it exists yet.  ``embedder``: a model loaded already, shared instead of loading it again
    (tests and the benchmarks load it once per run).  A part may be replaced by assigning it
    before it is first used (tests arm the stores of a generation to crash, for example).
    """

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        if embedder is not None:
            self.embedder = embedder
        self._refresh_lock = threading.Lock()
        self._follow_lock = threading.Lock()
        self._seen: object = None  # the manifest's stamp when follow() last looked
        self._checked = 0.0  # when follow() last read the manifest's revision
        self._revision: int | None = None
        self._damage: dict[int, list[str]] = {}  # generation id -> what its check found

    def built(self, part: str) -> bool:
        """Is ``part`` (the name of a property, e.g. ``"answer_service"``) built already?"""
        return part in self.__dict__

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        return Embedder(s.embedding_model, backend=s.embedding_backend, cache_dir=s.models_dir)

    @cached_property
    def chunker(self) -> Chunker:
        limit = min(self.settings.chunk_size, self.embedder.max_chunk_tokens)
        return Chunker(self.embedder.counter, limit, self.settings.chunk_overlap)

    @cached_property
    def index_info(self) -> IndexInfo:
        """What the settings ask the index to be built with."""
        c = self.chunker
        chunker = f"{CHUNKER_VERSION}/tokens={c.max_tokens}/overlap={c.overlap_lines}"
        return IndexInfo(self.embedder.model_id, self.embedder.dimension, chunker)

    @cached_property
    def manifest(self) -> ManifestDB:
        return ManifestDB(self.settings.index_dir)

    @cached_property
    def stores(self) -> GenerationStores:
        return GenerationStores(self.settings)

    def writer_lock(self, purpose: str | None, timeout: float | None = None) -> IndexLock:
        """The index's writer lock (``with runtime.writer_lock("rag ingest"): ...``)."""
        wait = self.settings.lock_wait if timeout is None else timeout
        return IndexLock(self.settings.index_dir, purpose, wait)

    def ingest_service(self, progress: Progress | None = None) -> IngestService:
        return IngestService(
            self.settings,
            self.embedder,
            self.manifest,
            self.stores,
            self.chunker,
            self.index_info,
            progress,
            on_switch=self.refresh,
            lock=lambda: self.writer_lock(None),
        )

    # -- the read side: the active generation ----------------------------------
    @cached_property
    def generation(self) -> Generation | None:
        """The generation queries use (None: no complete index yet)."""
        if not self.manifest.exists():
            return None
        return self.manifest.active()

    def _missing(self) -> IndexMissingError:
        index = self.settings.index_dir
        if (index / LEGACY_FILE).exists():
            return IndexMissingError(
                f"the index at {index} was made by an older version of rag",
                "rebuild it with `rag ingest`",
            )
        if self.manifest.exists() and self.manifest.building() is not None:
            return IndexMissingError(
                f"the index at {index} is not complete yet (an ingest is running or was "
                "interrupted)",
                "run `rag ingest` to finish it",
            )
        return IndexMissingError(
            f"no index found at {index}",
            "build it with `rag ingest` (or `make run`, which ingests data/corpus)",
        )

    @cached_property
    def store(self) -> ChromaStore:
        gen = self.generation
        if gen is None:
            store = ChromaStore(self.settings, self.index_info, f"{self.settings.collection}-g0")
            store.missing = self._missing()
            return store
        self.check_damage(gen)  # never handed out damaged: Chroma may crash on cut files
        return self.stores(gen)[0]

    @cached_property
    def lexical(self) -> LexicalIndex:
        gen = self.generation
        if gen is None:
            raise self._missing()
        return self.stores(gen)[1]

    @cached_property
    def query_embedder(self) -> Embedder:
        """The model the active generation was embedded with (normally the configured one)."""
        gen = self.generation
        if gen is None or gen.embedding_model == self.embedder.model_id:
            return self.embedder
        try:
            embedder = Embedder(gen.embedding_model, cache_dir=self.settings.models_dir)
        except RagError:
            raise IndexMismatchError(
                f"the index at {self.settings.index_dir} was built with embedding model "
                f"{gen.embedding_model!r}, which cannot be loaded; the settings ask for "
                f"{self.embedder.model_id!r}",
                "rebuild the index with `rag ingest` (the new model's index replaces it "
                "when complete)",
            ) from None
        log.warning(
            "the index was built with %s; queries use it until `rag ingest` rebuilds the index",
            gen.embedding_model,
        )
        return embedder

    @cached_property
    def default_backend(self) -> Choice:
        return make_backend(self.settings, self.settings.llm_backend)

    def check_damage(self, gen: Generation) -> None:
        """The cheap integrity check of ``gen``'s files (once per generation opened): raises
        IndexDamagedError naming what is damaged, before Chroma or SQLite reads them."""
        found = self._damage.get(gen.id)
        if found is None:
            found = self._damage[gen.id] = damage(self.settings, gen)
        if found:
            raise damaged_error(found)

    @cached_property
    def retriever(self) -> Retriever:
        if self.generation is not None:
            self.check_damage(self.generation)
        self.store.open()
        if self.lexical.count() != self.store.count():
            try:  # only a writer may repair the keyword index
                with self.writer_lock("rag (keyword index repair)", timeout=0):
                    self.ingest_service().reconcile_lexical()
            except IndexLockedError:
                log.warning("the keyword index is out of step; a running writer will repair it")
        return Retriever(self.settings, self.query_embedder, self.store, self.lexical)

    @cached_property
    def answer_service(self) -> AnswerService:
        return AnswerService(
            self.settings, self.query_embedder, self.retriever, self.default_backend
        )

    def follow(self) -> None:
        """Catch up with writes made by other processes; cheap when there were none.

        Usually two stat calls (:meth:`Manifest.stamp`); the manifest's revision is read
        when they changed, and every ``FOLLOW_RECHECK`` seconds anyway (network file systems
        may cache file attributes).  When another process switched the active generation:
        :meth:`refresh`.  When it only changed documents: drop what the open stores cached
        of their contents (exact-search vectors, keyword statistics); Chroma and the keyword
        index already show the new rows.
        """
        stamp = Manifest.stamp(self.settings.index_dir)
        if stamp == self._seen and time.monotonic() - self._checked < FOLLOW_RECHECK:
            return
        with self._follow_lock:
            self._seen, self._checked = stamp, time.monotonic()
            if not self.built("generation") or not self.manifest.exists():
                return  # nothing opened yet: the first query reads the manifest anyway
            try:
                revision = self.manifest.revision()
                if revision == self._revision:
                    return
                active = self.manifest.active()
            except (RagError, sqlite3.Error):
                return  # damaged, gone or busy: the read side reports it
            self._revision = revision
            opened = self.__dict__.get("generation")  # not built again here (a refresh may run)
            if (active.id if active else None) != (opened.id if opened else None):
                log.info("the index switched to generation %s", active.id if active else None)
                self.refresh()
            elif active is not None:
                store, lexical = self.stores(active)
                store.forget_cache()
                lexical.forget_cache()

    def refresh(self) -> None:
        """Forget the read side, so the next query opens the generation active now."""
        with self._refresh_lock:
            for name in _READ_SIDE:
                self.__dict__.pop(name, None)
            self._damage.clear()
