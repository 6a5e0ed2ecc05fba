"""Ingest: files -> line-anchored chunks -> embeddings -> Chroma, with a manifest."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from rag.adapters.embedder import Embedder
from rag.adapters.lexical import LexicalIndex
from rag.adapters.store import ChromaStore
from rag.config import Settings
from rag.errors import EmptyCorpusError
from rag.models import Chunk
from rag.services.chunker import Chunker
from rag.services.loader import Document, Skipped, discover, read
from rag.services.manifest import FileEntry, Manifest

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Where ingest reports progress (a progress bar, a job record, nothing)."""

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
    chunks_deleted: int = 0
    chunks_total: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0


class IngestService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        lexical: LexicalIndex,
        chunker: Chunker,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        self.chunker = chunker
        self.progress = progress or NoProgress()

    # -- staleness ---------------------------------------------------------
    def stale_reason(self) -> str | None:
        """Why the index does not match the corpus folder, or None when it does."""
        if not self.store.exists():
            return "no index yet"
        manifest = Manifest.load(self.settings.index_dir)
        if not manifest.files:
            return "the index lists no documents"
        if manifest.embedding_model != self.store.expected.embedding_model or (
            manifest.chunker != self.store.expected.chunker
        ):
            return "the index was built with other embedding or chunking settings"
        if self.lexical.count() != manifest.chunk_count:
            return "the keyword index is out of step with the vector index"
        sources = discover([self.settings.corpus_dir], self.settings.corpus_dir)
        current = {s.rel_path: s for s in sources}
        listed = {
            k
            for k, v in manifest.files.items()
            if Path(v.abs_path).is_relative_to(self.settings.corpus_dir.resolve())
        }
        if gone := listed - current.keys():
            return f"{len(gone)} document(s) removed from the corpus, e.g. {sorted(gone)[0]}"
        for rel, source in current.items():
            entry = manifest.files.get(rel)
            if entry is None:
                if isinstance(read(source, self._max_bytes), Document):
                    return f"new document {rel}"
                continue
            stat = source.abs_path.stat()
            if stat.st_size != entry.size or stat.st_mtime != entry.mtime:
                doc = read(source, self._max_bytes)
                if not isinstance(doc, Document) or doc.sha256 != entry.sha256:
                    return f"changed document {rel}"
        return None

    @property
    def _max_bytes(self) -> int:
        return int(self.settings.max_file_mb * 2**20)

    # -- ingest ------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[Path] | None = None,
        *,
        rebuild: bool = False,
        prune: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        roots = list(paths) if paths else [self.settings.corpus_dir]
        sources = discover(roots, self.settings.corpus_dir)  # bad paths fail before any write
        report = IngestReport(files_seen=len(sources))

        self.progress.start("read", len(sources))
        docs: list[Document] = []
        for source in sources:
            got = read(source, self._max_bytes)
            if isinstance(got, Skipped):
                report.skipped.append(got)
                self.progress.warn(f"skipped {got.path}: {got.reason}")
            else:
                docs.append(got)
            self.progress.advance("read")
        if not docs:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:5])
            raise EmptyCorpusError(
                f"no readable text in {', '.join(str(r) for r in roots)} ({reasons})",
                "rag reads UTF-8 text files (.txt, .md, .rst, source code, ...)",
            )

        if rebuild:
            self.store.drop()
            manifest = Manifest()
        else:
            manifest = Manifest.load(self.settings.index_dir)
            if not self.store.exists():
                manifest = Manifest()  # the vectors are gone: nothing listed is there
        self.store.open(create=True)
        self.reconcile_lexical()
        manifest.embedding_model = self.store.expected.embedding_model
        manifest.chunker = self.store.expected.chunker

        todo: list[tuple[Document, list[Chunk]]] = []
        for doc in docs:
            entry = manifest.files.get(doc.source.rel_path)
            if entry and entry.sha256 == doc.sha256:
                report.files_unchanged += 1
                continue
            todo.append((doc, self.chunker.chunk(doc.source.rel_path, doc.text)))

        all_chunks = [c for _, chunks in todo for c in chunks]
        self.progress.start("embed", len(all_chunks))
        try:
            embeddings = self.embedder.encode(
                [c.text for c in all_chunks],
                batch_size=self.settings.embedding_batch_size,
                on_batch=lambda n: self.progress.advance("embed", n),
            )
            offset = 0
            for doc, chunks in todo:
                vectors = embeddings[offset : offset + len(chunks)]
                offset += len(chunks)
                self._write_file(manifest, doc, chunks, vectors, report)
            if prune:
                self._prune(manifest, roots, {s.rel_path for s in sources}, report)
        finally:
            manifest.save(self.settings.index_dir)  # whatever finished is kept
        report.chunks_total = manifest.chunk_count
        report.seconds = time.perf_counter() - started
        return report

    def delete_document(self, path: str) -> FileEntry | None:
        """Remove one document (``path`` as the manifest names it) and all its chunks.

        The manifest stops listing it first, then its chunks leave Chroma and the keyword
        index: an interruption leaves unlisted chunks (stale, repaired by the next ingest),
        never a listed document with missing chunks.  Returns the removed entry, or None
        when the index does not list ``path``.  The caller serializes writes.
        """
        manifest = Manifest.load(self.settings.index_dir)
        entry = manifest.files.pop(path, None)
        if entry is None:
            return None
        ids = sorted(set(entry.chunk_ids) | set(self.store.ids_for_path(path)))
        manifest.save(self.settings.index_dir)
        self.store.delete(ids)
        self.lexical.delete(ids)
        return entry

    def reconcile_lexical(self) -> None:
        """Make the keyword index hold exactly the chunks Chroma holds."""
        if self.lexical.count() == self.store.count():
            return
        self.lexical.clear()
        self.lexical.upsert(self.store.all_chunks())

    def _write_file(
        self,
        manifest: Manifest,
        doc: Document,
        chunks: list[Chunk],
        vectors: object,
        report: IngestReport,
    ) -> None:
        rel = doc.source.rel_path
        old = manifest.files.get(rel)
        old_ids = set(old.chunk_ids) if old else set(self.store.ids_for_path(rel))
        new_ids = [c.id for c in chunks]
        manifest.files.pop(rel, None)  # not listed while its chunks change
        self.store.upsert(chunks, vectors)  # type: ignore[arg-type]
        self.lexical.upsert(chunks)
        stale = sorted(old_ids - set(new_ids))
        self.store.delete(stale)
        self.lexical.delete(stale)
        manifest.files[rel] = FileEntry(
            path=rel,
            abs_path=str(doc.source.abs_path),
            sha256=doc.sha256,
            size=doc.size,
            mtime=doc.mtime,
            chunk_ids=new_ids,
            ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        report.files_indexed += 1
        report.chunks_written += len(chunks)
        report.chunks_deleted += len(stale)

    def _prune(
        self, manifest: Manifest, roots: Sequence[Path], present: set[str], report: IngestReport
    ) -> None:
        resolved = [r.resolve() for r in roots]
        for rel, entry in list(manifest.files.items()):
            inside = any(Path(entry.abs_path).is_relative_to(r) for r in resolved)
            if inside and rel not in present:
                self.store.delete(entry.chunk_ids)
                self.lexical.delete(entry.chunk_ids)
                del manifest.files[rel]
                report.files_removed += 1
                report.chunks_deleted += len(entry.chunk_ids)
