"""Ingest: files -> line-anchored chunks -> embeddings -> Chroma + keyword index, with a manifest.

Keeping the index true to the files:

- incremental: an unchanged file (same sha256) is skipped; a changed one is re-chunked and
  only chunks whose content is new are embedded (chunk ids are content hashes, so a chunk
  already stored keeps its vector); its old chunks are deleted, so no old text remains.
- crash-safe: per file, the manifest marks it ``pending`` (with its new chunk ids) before
  anything is written and ``complete`` after; a kill in between leaves a pending file and a
  ``dirty`` mark, and :meth:`IngestService.recover` (run before every write) removes chunks
  no file lists, re-syncs the keyword index, and the next ingest finishes the file.
- generations: a change of embedding model or chunker builds a new index beside the active
  one, which keeps answering queries until the new one is complete and switched to.
- bounded memory: files are read and chunked on a helper thread at most ``BATCH_CHUNKS``
  chunks ahead of the embedding, embedded in batches of ``RAG_INGEST_GROUP`` chunks and
  written on another thread, so a build of a million chunks holds a few batches, not the
  corpus.

Every write holds the index's writer lock (``lock``, see :mod:`rag.adapters.lock`).

Longer than ~400 lines on purpose: ``IngestService`` is one ordered flow (read, chunk, embed,
mark pending, write, mark complete, prune, switch generations) whose order is what makes it
crash-safe; recovery, staleness, the manifest and the stores of each generation are elsewhere.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.adapters.embedder import Embedder
from rag.adapters.faults import disk_full_error, is_disk_full
from rag.adapters.generations import GenerationStores
from rag.adapters.manifest import FileEntry, Generation, ManifestDB
from rag.adapters.store import ChromaStore, IndexInfo
from rag.config import Settings
from rag.errors import EmptyCorpusError, IndexStateError, RagError
from rag.indexing import staleness
from rag.indexing.chunker import Chunker
from rag.indexing.loader import Document, Skipped, SourceFile, discover, read
from rag.indexing.pipeline import OrderedWriter, read_ahead
from rag.indexing.recovery import Recovery, builds_wanted
from rag.models import Chunk, now
from rag.spans import context_spans

log = logging.getLogger(__name__)

# Chunks read ahead of the embedding: files are read and chunked on a helper thread while
# a batch (a group of RAG_INGEST_GROUP chunks) is embedded, at most this many chunks ahead
# (a 1M-chunk build held 6.6 GB when it read the whole corpus first).
BATCH_CHUNKS = 20_000
# Files embedded ahead of their writes (their vectors held until written).
WRITE_AHEAD = 64


class Progress(Protocol):
    """Where ingest reports progress (a progress bar, a job record, nothing).

    ``start`` begins a phase; called again for a phase already started, it adds ``total``
    to it (files are embedded batch by batch, so the chunks to embed become known as the
    files are read)."""

    def start(self, phase: str, total: int) -> None: ...
    def advance(self, phase: str, n: int = 1) -> None: ...
    def warn(self, message: str) -> None: ...


class NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        log.warning("%s", message)


@dataclass
class IngestReport:
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    generation: int = 0
    switched: bool = False  # a new generation was built and made active
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Work:
    doc: Document
    chunks: list[Chunk]
    vectors: dict[str, Any]  # chunk id -> vector, filled as they are reused or embedded
    old: FileEntry | None
    sentences: dict[str, Any] = field(default_factory=dict)  # chunk id -> sentence vectors


def _same_stat(entry: FileEntry | None, source: SourceFile) -> bool:
    if entry is None or entry.status != "complete" or entry.abs_path != str(source.abs_path):
        return False
    try:
        st = source.abs_path.stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime) == (entry.size, entry.mtime)


def _unchanged(entry: FileEntry | None, doc: Document) -> bool:
    """Written completely before with the same content: only re-stamped, not chunked."""
    return entry is not None and entry.status == "complete" and entry.sha256 == doc.sha256


class IngestService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        manifest: ManifestDB,
        stores: GenerationStores,
        chunker: Chunker,
        wanted: IndexInfo,
        progress: Progress | None = None,
        on_switch: Callable[[], None] | None = None,
        lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.manifest = manifest
        self.stores = stores
        self.chunker = chunker
        self.wanted = wanted
        self.progress = progress or NoProgress()
        self.on_switch = on_switch or (lambda: None)
        self.lock = lock or nullcontext
        self.recovery = Recovery(settings, manifest, stores, wanted)

    def _builds_wanted(self, gen: Generation) -> bool:
        return builds_wanted(gen, self.wanted)

    # -- recovery (rag.indexing.recovery) ------------------------------------------
    def check(self) -> list[str]:
        """:meth:`recover` under the writer lock (at start-up)."""
        with self.lock():
            return self.recover()

    def recover(self, rebuild: bool = False) -> list[str]:
        """Bring manifest, Chroma and keyword index back in step after any interruption
        (see :meth:`Recovery.recover`).  Run under the writer lock before writing."""
        return self.recovery.recover(rebuild)

    def reconcile_lexical(self, gen: Generation | None = None) -> None:
        """Make the keyword index hold exactly the chunks Chroma holds."""
        self.recovery.reconcile_lexical(gen)

    # -- staleness (rag.indexing.staleness) -------------------------------------
    def stale_reason(self) -> str | None:
        """Why the index does not match the corpus folder, or None when it does."""
        return staleness.stale_reason(self.settings, self.manifest, self.stores, self.wanted)

    def changes(
        self, files: dict[str, FileEntry], limit: int = 1, links: list[Skipped] | None = None
    ) -> list[str]:
        """How the corpus folder differs from ``files`` (see :func:`staleness.changes`)."""
        return staleness.changes(self.settings, files, limit, links)

    # -- ingest ------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[Path] | None = None,
        *,
        rebuild: bool = False,
        prune: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        roots = list(paths) if paths else [self.settings.corpus_dir]
        links: list[Skipped] = []
        sources = discover(roots, self.settings.corpus_dir, links)  # bad paths fail first
        report = IngestReport(files_seen=len(sources))
        for link in links:
            report.skipped.append(link)
            self.progress.warn(f"skipped {link.path}: {link.reason}")
        try:
            with self.lock():
                self._ingest(sources, roots, report, rebuild=rebuild, prune=prune)
        except Exception as exc:  # a full disk anywhere (Chroma, SQLite, the lock): named
            if isinstance(exc, RagError) or not is_disk_full(exc, self.settings.index_dir):
                raise
            raise disk_full_error(self.settings.index_dir) from exc
        report.seconds = time.perf_counter() - started
        return report

    def _ingest(
        self,
        sources: list[SourceFile],
        roots: list[Path],
        report: IngestReport,
        *,
        rebuild: bool,
        prune: bool,
    ) -> None:
        report.notes.extend(self.recover(rebuild=rebuild))

        active = self.manifest.active()
        target, new_build = self._target(active, rebuild)
        report.generation = target.id
        if new_build and active is not None and not rebuild:
            sources = self._carry_over(sources, active, report)
        existing = self.manifest.files(target.id)
        # Unchanged by size and mtime (as rsync and git judge it): not even read again.
        fresh = [s for s in sources if not _same_stat(existing.get(s.rel_path), s)]
        report.files_unchanged += len(sources) - len(fresh)
        batches = self._batches(target, fresh, existing, roots, report)
        first = next(batches, None)  # an unreadable corpus fails here, before any write

        store, _ = self.stores(target)
        store.open(create=True)
        self.manifest.set_meta("dirty", str(target.id))
        previous = active if new_build else None

        def write(work: _Work) -> None:
            self._write_file(target, work, report)

        # Files are written on a second thread while the next group is embedded; a group's
        # files are queued together, so the queue holds a group's worth (4 files made the
        # embedding wait for the writes at each group's end: 1.6 s of a 45 s build).
        with OrderedWriter(write, depth=WRITE_AHEAD) as writer:
            for todo in itertools.chain([first] if first else [], batches):
                self._embed_and_write(target, todo, previous, report, writer)
        self._drop_unreadable(target, existing, report)
        if prune:
            self._prune(target, roots, {s.rel_path for s in sources}, report)
        report.chunks_total = sum(len(e.chunk_ids) for e in self.manifest.files(target.id).values())
        if new_build:
            self.manifest.activate(target.id)
            report.switched = True
            self.on_switch()
            if active is not None:
                self.recovery.drop_generation(active)
        self.manifest.set_meta("dirty", None)

    def _chunk_within_limit(self, doc: Document) -> tuple[list[Chunk], str]:
        """The file's chunks, at most RAG_MAX_FILE_CHUNKS of them, and a warning naming a file
        that has more ("" if none).  Only a generous prefix of a huge file is even tokenized."""
        limit = self.settings.max_file_chunks
        text, name = doc.text, doc.source.rel_path
        prefix = 2 * limit * self.chunker.max_chars
        cut = len(text) > prefix
        if cut:
            text = text[:prefix]
        pages = tuple(p for p in doc.pages or () if p <= text.count("\n") + 1) or None
        chunks = self.chunker.chunk(name, text, page_starts=pages)
        if (len(chunks) > limit or cut) and chunks:
            kept = chunks[:limit]
            return kept, (
                f"{name}: only its first {len(kept)} chunks (lines 1-{kept[-1].end_line}) are "
                f"indexed: the file is longer than RAG_MAX_FILE_CHUNKS ({limit}) allows"
            )
        return chunks, ""

    def _target(self, active: Generation | None, rebuild: bool) -> tuple[Generation, bool]:
        """The generation to write: the active one, or a new one built beside it."""
        if active is not None and self._builds_wanted(active) and not rebuild:
            return active, False
        building = self.manifest.building()
        if building is not None and (rebuild or not self._builds_wanted(building)):
            self.recovery.drop_generation(building)
            building = None
        if building is None:
            self._check_name_free()
            w = self.wanted
            building = self.manifest.new_generation(
                w.embedding_model, w.embedding_dim, w.chunker, self.settings.collection
            )
            self.recovery.discard(building)  # leftovers of a lost manifest must not leak in
        return building, True

    def _check_name_free(self) -> None:
        """On a Chroma server, refuse to build into a collection this index does not list.

        A new generation drops leftovers of its collection name (a lost manifest's), which
        is right for an embedded index but, on a server shared by several index folders,
        could delete another index's collection of the same name.
        """
        if not self.settings.chroma_url:
            return
        gid = max((g.id for g in self.manifest.generations()), default=0) + 1
        name = f"{self.settings.collection}-g{gid}"
        store = ChromaStore(self.settings, self.wanted, name)
        if store.exists():
            raise IndexStateError(
                f"the Chroma server at {self.settings.chroma_url} already has a collection "
                f"{name!r} that the index at {self.settings.index_dir} does not list (another "
                "index folder uses the same RAG_COLLECTION, or this one lost its manifest)",
                "give each index folder its own RAG_COLLECTION; delete the collection on the "
                "server if it is a leftover nobody uses",
            )

    def _carry_over(
        self, sources: list[SourceFile], active: Generation, report: IngestReport
    ) -> list[SourceFile]:
        """A new generation holds every document of the active one, not only those named."""
        have = {s.rel_path for s in sources}
        for path, entry in self.manifest.files(active.id).items():
            if path in have:
                continue
            abs_path = Path(entry.abs_path)
            if abs_path.is_file():
                sources.append(SourceFile(abs_path=abs_path, rel_path=path))
            else:
                report.notes.append(f"{path} is gone from disk; the new index leaves it out")
        return sorted(sources, key=lambda s: s.rel_path)

    def _batches(
        self,
        target: Generation,
        sources: list[SourceFile],
        existing: dict[str, FileEntry],
        roots: list[Path],
        report: IngestReport,
    ) -> Iterator[list[_Work]]:
        """The files to write, read and chunked (ahead, on a helper thread) a batch of about
        RAG_INGEST_GROUP chunks at a time; a file whose content is unchanged (same sha256) is
        only re-stamped in the manifest."""
        if not sources:
            return
        self.progress.start("read", len(sources))
        todo: list[_Work] = []
        held = 0
        readable = False

        def prepare(source: SourceFile) -> tuple[Document | Skipped, list[Chunk] | None, str]:
            """On the reader thread: the file read and, unless unchanged, chunked."""
            got = read(source, self.settings.max_file_bytes)
            if isinstance(got, Skipped) or _unchanged(existing.get(got.source.rel_path), got):
                return got, None, ""
            return (got, *self._chunk_within_limit(got))

        def weight(prepared: tuple[Document | Skipped, list[Chunk] | None, str]) -> int:
            return 1 + len(prepared[1] or ())

        batch = min(self.settings.ingest_group, BATCH_CHUNKS)
        for got, chunks, warning in read_ahead(sources, prepare, weight, BATCH_CHUNKS):
            doc = self._reported(got, report)
            self.progress.advance("read")
            if doc is None:
                continue
            readable = True
            entry = existing.get(doc.source.rel_path)
            if chunks is None:
                assert entry is not None
                report.files_unchanged += 1
                where = str(doc.source.abs_path)
                if (entry.abs_path, entry.mtime) != (where, doc.mtime):  # moved or touched
                    entry.abs_path, entry.mtime, entry.size = where, doc.mtime, doc.size
                    self.manifest.put_file(target.id, entry)
                continue
            if warning:
                self.progress.warn(warning)
            todo.append(_Work(doc, chunks, {}, entry))
            held += len(todo[-1].chunks)
            if held >= batch:
                yield todo
                todo, held = [], 0
        if not readable and not report.files_unchanged:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:5])
            raise EmptyCorpusError(
                f"no readable text in {', '.join(str(r) for r in roots)} ({reasons})",
                "rag reads text (any common encoding), Markdown, reStructuredText, HTML, PDF, "
                "DOCX and source code files",
            )
        if todo:
            yield todo

    def _reported(self, got: Document | Skipped, report: IngestReport) -> Document | None:
        """The file read, its skip or warnings reported (in the caller's thread)."""
        if isinstance(got, Skipped):
            report.skipped.append(got)
            self.progress.warn(f"skipped {got.path}: {got.reason}")
            return None
        for warning in getattr(got, "warnings", ()):
            self.progress.warn(f"{got.source.rel_path}: {warning}")
        return got

    def _embed_and_write(
        self,
        target: Generation,
        todo: list[_Work],
        previous: Generation | None,
        report: IngestReport,
        writer: OrderedWriter[_Work],
    ) -> None:
        """Reuse stored vectors by content hash, embed the rest in groups, and hand each file
        to ``writer`` once its chunks all have vectors."""
        store, _ = self.stores(target)
        ids = sorted({c.id for w in todo for c in w.chunks})
        known = store.embeddings_for(ids) if ids else {}
        carried: dict[str, Any] = {}  # sentence vectors of chunks carried from `previous`
        if previous is not None and previous.embedding_model == target.embedding_model:
            rest = [i for i in ids if i not in known]
            reused = self.recovery.vectors_back(previous, rest) if rest else {}
            known.update(reused)
            carried = self.recovery.sentences_back(previous, sorted(reused)) if reused else {}
        pending: list[Chunk] = []
        owners: dict[str, list[_Work]] = {}  # chunk id -> the files waiting for its vector
        for work in todo:
            for chunk in work.chunks:
                if chunk.id in known:
                    work.vectors[chunk.id] = known[chunk.id]
                    if chunk.id in carried:
                        work.sentences[chunk.id] = carried[chunk.id]
                    report.chunks_reused += 1
                else:
                    pending.append(chunk)
                    owners.setdefault(chunk.id, []).append(work)
        self.progress.start("embed", len(pending))
        queue = list(todo)
        step = self.settings.ingest_group
        for start in range(0, len(pending) or 1, step):
            group = pending[start : start + step]
            if group:
                vectors, parts = self._embed(group)
                report.chunks_embedded += len(group)
                for i, (chunk, vector) in enumerate(zip(group, vectors, strict=True)):
                    for work in owners[chunk.id]:
                        work.vectors[chunk.id] = vector
                        if parts is not None:
                            work.sentences[chunk.id] = parts[i]
            while queue and all(c.id in queue[0].vectors for c in queue[0].chunks):
                writer.put(queue.pop(0))

    def _embed(self, group: list[Chunk]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Vectors of the chunks, and (int8 backend) of their sentences from the same runs,
        kept for re-ranking so that a query never embeds a retrieved passage's sentences."""
        texts = [c.embed_text for c in group]
        batch = self.settings.embedding_batch_size
        advance = lambda n: self.progress.advance("embed", n)  # noqa: E731
        if getattr(self.embedder, "pools_in_context", False):
            spans = [context_spans(c) for c in group]
            return self.embedder.encode_in_context(texts, spans, batch, advance)
        return self.embedder.encode(texts, batch_size=batch, on_batch=advance), None

    def _write_file(self, target: Generation, work: _Work, report: IngestReport) -> None:
        store, lexical = self.stores(target)
        doc = work.doc
        rel = doc.source.rel_path
        new_ids = [c.id for c in work.chunks]
        old_ids = set(work.old.chunk_ids) if work.old else set()
        if work.old is not None:
            # A file this generation does not list has nothing stored: chunks are listed
            # before they are written, and unlisted ones (a kill while removing a file) exist
            # only while the index is marked dirty, which recover() clears first. The query
            # is a scan of Chroma's metadata: per new file of a 1M-chunk build it cost more
            # than the file's whole write (the build slowed from 17k to 3k chunks a minute).
            old_ids |= set(store.ids_for_path(rel))
        entry = FileEntry(
            path=rel,
            abs_path=str(doc.source.abs_path),
            sha256=doc.sha256,
            size=doc.size,
            mtime=doc.mtime,
            chunk_ids=new_ids,
            ingested_at=now(),
            status="pending",
        )
        self.manifest.put_file(target.id, entry)  # listed as unfinished while chunks change
        if work.chunks:
            matrix = np.asarray([work.vectors[c.id] for c in work.chunks], dtype=np.float32)
            store.upsert(work.chunks, matrix)
            lexical.upsert(work.chunks, work.sentences)
        stale = sorted(old_ids - set(new_ids))
        store.delete(stale)
        lexical.delete(stale)
        self.manifest.set_status(target.id, rel, "complete")
        report.files_indexed += 1
        report.chunks_written += len(work.chunks)
        report.chunks_deleted += len(stale)

    def _drop_unreadable(
        self, target: Generation, existing: dict[str, FileEntry], report: IngestReport
    ) -> None:
        """A listed file that can no longer be read (replaced by a binary, emptied, grown
        past the limit) loses its chunks: they no longer say what the file says."""
        for skipped in report.skipped:
            entry = existing.get(skipped.path)
            if entry is None or entry.path not in self.manifest.files(target.id):
                continue
            self._remove(target, skipped.path, entry)
            report.files_removed += 1
            report.chunks_deleted += len(entry.chunk_ids)
            report.notes.append(
                f"{skipped.path} can no longer be read ({skipped.reason}); its chunks were removed"
            )

    def _prune(
        self, target: Generation, roots: Sequence[Path], present: set[str], report: IngestReport
    ) -> None:
        """Remove documents gone from the given folders, or gone from disk altogether."""
        resolved = [r.resolve() for r in roots]
        for rel, entry in self.manifest.files(target.id).items():
            where = Path(entry.abs_path)
            inside = any(where.is_relative_to(r) for r in resolved)
            if rel not in present and (inside or not where.exists()):
                self._remove(target, rel, entry)
                report.files_removed += 1
                report.chunks_deleted += len(entry.chunk_ids)

    def _remove(self, gen: Generation, path: str, entry: FileEntry) -> None:
        """Unlist first, then delete chunks: a kill between leaves orphans, which recover()
        removes; never a listed document with missing chunks."""
        store, lexical = self.stores(gen)
        ids = sorted(set(entry.chunk_ids) | set(store.ids_for_path(path)))
        self.manifest.remove_file(gen.id, path)
        store.delete(ids)
        lexical.delete(ids)

    def delete_document(self, path: str) -> FileEntry | None:
        """Remove one document (``path`` as the manifest names it) and all its chunks.

        Returns the removed entry, or None when the index does not list ``path``.
        """
        with self.lock():
            return self._delete_document(path)

    def _delete_document(self, path: str) -> FileEntry | None:
        self.recover()
        active = self.manifest.active()
        if active is None:
            return None
        entry = self.manifest.files(active.id).get(path)
        if entry is None:
            return None
        self.manifest.set_meta("dirty", str(active.id))  # a kill in between leaves orphans
        self._remove(active, path, entry)
        building = self.manifest.building()
        if building is not None and path in self.manifest.files(building.id):
            self._remove(building, path, self.manifest.files(building.id)[path])
        self.manifest.set_meta("dirty", None)
        return entry

    def index_size(self) -> int:
        """Bytes on disk under the index folder."""
        total = 0
        for path in self.settings.index_dir.rglob("*"):
            if path.is_file():
                total += path.stat().st_size
        return total
