"""Recovery: bring the manifest, Chroma and the keyword index back in step after an
interruption (a kill, a torn manifest, a lost keyword index) and drop generations no one
needs.  The ingest service runs it under the writer lock before every write; ``rag serve``
runs it at start-up.

- ``dirty`` mark (an ingest was interrupted): chunks no file lists are removed, files whose
  chunks are missing are marked pending (the next ingest finishes them), BM25 re-synced.
- a damaged manifest is rebuilt from the vector index that ``ACTIVE.json`` names, and every
  file is re-verified by the next ingest; the damaged file is kept beside it.
- retired generations, builds for settings no longer wanted, and builds killed before their
  collection existed (nothing was written to them) are dropped.
- a damaged generation (:mod:`rag.indexing.integrity`) is not touched: without ``rebuild``
  that is an IndexDamagedError naming the damage; with it, the new build replaces it and its
  files are kept aside in ``damaged-STAMP/``.  A damaged Chroma database holds every
  generation, so with ``rebuild`` the whole Chroma folder is moved aside first.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.adapters.integrity import hnsw_segments
from rag.adapters.manifest import LEGACY_FILE, FileEntry, Generation, ManifestDB, read_active_file
from rag.adapters.store import ChromaStore, IndexInfo, release_clients
from rag.config import Settings
from rag.errors import IndexStateError, ManifestDamagedError
from rag.indexing.integrity import chroma_damage, damage, damaged_error, vectors_readable
from rag.models import now

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from rag.adapters.generations import GenerationStores


def builds_wanted(gen: Generation, wanted: IndexInfo) -> bool:
    """Does ``gen`` hold (or build) the index the settings ask for?"""
    return gen.builds(wanted.embedding_model, wanted.embedding_dim, wanted.chunker)


class Recovery:
    def __init__(
        self,
        settings: Settings,
        manifest: ManifestDB,
        stores: GenerationStores,
        wanted: IndexInfo,
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.stores = stores
        self.wanted = wanted
        self.damaged: dict[int, list[str]] = {}  # generation id -> its damage, found by recover

    def recover(self, rebuild: bool = False) -> list[str]:
        """Bring manifest, Chroma and keyword index back in step after any interruption.

        Run under the writer lock before writing.  Returns notes for the user.  ``rebuild``:
        a damaged manifest that cannot be rebuilt is set aside instead of being an error.
        """
        notes: list[str] = []
        try:
            self.manifest.connect(create=True)
        except ManifestDamagedError as exc:
            try:
                notes.append(self._rebuild_manifest(exc))
            except IndexStateError:
                if not rebuild:
                    raise
                aside = self.manifest.set_aside()
                self.manifest.connect(create=True)
                notes.append(f"the damaged manifest was set aside as {aside.name}")
        self.damaged = {}
        broken = chroma_damage(self.settings)
        if broken is not None:
            if not rebuild:
                raise damaged_error([broken])
            notes.append(self.set_aside_chroma(broken))
        legacy = self.settings.index_dir / LEGACY_FILE
        if legacy.exists() and self.manifest.active() is None:
            self._drop_legacy()
            notes.append("an index made by an older version of rag was found; it is rebuilt")
        for gen in self.manifest.generations():
            if gen.state == "retired" or (
                gen.state == "building"
                and (not builds_wanted(gen, self.wanted) or not self.stores(gen)[0].exists())
            ):
                # a build killed before its collection was created holds nothing: start over
                self.drop_generation(gen)
        dirty = self.manifest.get_meta("dirty")
        for gen in self.manifest.generations():
            found = damage(self.settings, gen)
            if found:
                if gen.state == "active" and not rebuild:
                    raise damaged_error(found)
                self.damaged[gen.id] = found
                if gen.state == "active":
                    notes.append(f"damaged: {'; '.join(found)}; rebuilt from the documents")
                else:
                    self.drop_generation(gen)
                continue
            if dirty is not None:
                fixed = self._reconcile(gen)
                if fixed:
                    notes.append(f"repaired an interrupted ingest: {fixed}")
            elif gen.state == "active":
                lost = self.lost_vectors(gen)
                if lost:
                    notes.append(lost)
                self.reconcile_lexical(gen)
        if dirty is not None:
            self.manifest.set_meta("dirty", None)
        return notes

    def _reconcile(self, gen: Generation) -> str:
        """Remove chunks no file lists, mark files with missing chunks pending, re-sync BM25."""
        store, lexical = self.stores(gen)
        if not store.exists():
            store.open(create=True)
        files = self.manifest.files(gen.id)
        listed = {cid for entry in files.values() for cid in entry.chunk_ids}
        stored = store.all_ids()
        orphans = sorted(stored - listed)
        store.delete(orphans)
        stored -= set(orphans)
        unfinished = 0
        for entry in files.values():
            if entry.status != "pending" and not set(entry.chunk_ids) <= stored:
                self.manifest.set_status(gen.id, entry.path, "pending")
                unfinished += 1
            elif entry.status == "pending":
                unfinished += 1
        in_lexical = lexical.ids()
        lexical.delete(sorted(in_lexical - stored))
        missing = sorted(stored - in_lexical)
        lexical.upsert(store.chunks_for(missing))
        parts = []
        if orphans:
            parts.append(f"{len(orphans)} unlisted chunk(s) removed")
        if unfinished:
            parts.append(f"{unfinished} document(s) left to finish")
        if missing or in_lexical - stored:
            parts.append("keyword index re-synced")
        return ", ".join(parts)

    def lost_vectors(self, gen: Generation) -> str:
        """A store that lost vectors the manifest lists (a new or emptied Chroma server, a
        lost volume): the files whose chunks are missing are marked pending, so the next
        ingest embeds them again instead of counting them unchanged.  Returns a note, or ""
        when the store holds what the manifest lists (one count: cheap at every open)."""
        store, _ = self.stores(gen)
        files = self.manifest.files(gen.id)
        listed = sum(len(e.chunk_ids) for e in files.values())
        held = store.count() if store.exists() else 0
        if held == listed:
            return ""
        fixed = self._reconcile(gen)
        return (
            f"the vector store holds {held} chunks; the manifest lists {listed} (a new or "
            f"emptied Chroma server, or a lost volume?): {fixed or 'nothing to redo'}; "
            "`rag ingest` embeds what is missing"
        )

    def reconcile_lexical(self, gen: Generation | None = None) -> None:
        """Make the keyword index hold exactly the chunks Chroma holds."""
        gen = gen or self.manifest.active()
        if gen is None:
            return
        store, lexical = self.stores(gen)
        if not store.exists() or lexical.count() == store.count():
            return
        lexical.replace_all(store.all_chunks())

    def _rebuild_manifest(self, exc: ManifestDamagedError) -> str:
        active = read_active_file(self.settings.index_dir)
        if active is None:
            raise IndexStateError(
                f"{exc.message}, and no record of the active index is left to rebuild it from",
                "rebuild the index with `rag ingest --rebuild`",
            ) from None
        store, _ = self.stores(active)
        if not store.exists():
            raise IndexStateError(
                f"{exc.message}, and the vector index it described ({store.where}) is gone",
                "rebuild the index with `rag ingest --rebuild`",
            ) from None
        aside = self.manifest.set_aside()
        self.manifest.connect(create=True)
        self.manifest.restore_generation(active)
        corpus = self.settings.corpus_dir.resolve()
        by_path = store.ids_by_path()
        for path, ids in by_path.items():
            self.manifest.put_file(
                active.id,
                FileEntry(path, str(corpus / path), "", 0, 0.0, ids, now(), "recovered"),
            )
        self.manifest.set_meta("dirty", str(active.id))
        return (
            f"the manifest was damaged; rebuilt it from the vector index ({len(by_path)} "
            f"documents, verified by the next ingest); the damaged file is kept as {aside.name}"
        )

    def drop_generation(self, gen: Generation) -> None:
        if gen.id in self.damaged:
            self.keep_aside(gen)
        self.discard(gen)
        self.manifest.forget(gen.id)

    def discard(self, gen: Generation) -> None:
        """Delete a generation's Chroma collection and keyword-index files."""
        store, _ = self.stores(gen)
        try:
            store.drop()
        except Exception as exc:
            if gen.id not in self.damaged:
                raise
            log.warning("the damaged collection %s could not be dropped: %s", gen.collection, exc)
        self.stores.forget(gen)
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.settings.index_dir / gen.lexical) + suffix).unlink(missing_ok=True)

    def _drop_legacy(self) -> None:
        legacy = ChromaStore(self.settings, self.wanted, self.settings.collection)
        legacy.drop()
        for name in (LEGACY_FILE, "lexical.sqlite", "lexical.sqlite-wal", "lexical.sqlite-shm"):
            (self.settings.index_dir / name).unlink(missing_ok=True)

    def _aside_folder(self) -> Path:
        folder = self.settings.index_dir / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _move_lexical(self, gen: Generation, folder: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.settings.index_dir / gen.lexical) + suffix)
            if src.exists():
                os.replace(src, folder / src.name)

    def keep_aside(self, gen: Generation) -> None:
        """Move a damaged generation's files to ``damaged-STAMP/`` (for inspection) before
        it is dropped: its keyword index and its HNSW folders (moved, so that dropping its
        collection never makes Chroma load a cut file)."""
        folder = self._aside_folder()
        self._move_lexical(gen, folder)
        chroma = self.settings.chroma_path / "chroma.sqlite3"
        if self.settings.chroma_url or not chroma.exists():
            return
        try:
            for segment in hnsw_segments(chroma, gen.collection):
                os.replace(segment, folder / segment.name)
        except Exception as exc:
            log.warning("the damaged vector index of %s was not moved: %s", gen.collection, exc)

    def set_aside_chroma(self, why: str) -> str:
        """Move a damaged embedded Chroma folder (every generation lives in it) and the
        keyword indexes aside; the manifest forgets those generations, so the next build
        starts from the documents."""
        folder = self._aside_folder()
        self.stores.forget_all()
        release_clients()
        if self.settings.chroma_path.exists():
            os.replace(self.settings.chroma_path, folder / self.settings.chroma_path.name)
        for gen in self.manifest.generations():
            self._move_lexical(gen, folder)
            self.manifest.forget(gen.id)
        return (
            f"damaged: {why}; the Chroma folder and keyword indexes were moved to "
            f"{folder.name}/ and the index is rebuilt from the documents"
        )

    # -- what a previous generation gives back whole (reused by the next build) ----------
    def vectors_back(self, gen: Generation, ids: list[str]) -> dict[str, Any]:
        """The vectors of ``ids`` that ``gen`` gives back whole (a damaged generation gives
        back some, or none: the rest is embedded again).  Batch by batch: one unreadable
        batch costs only its own vectors."""
        found = self.damaged.get(gen.id)
        if found is not None and not vectors_readable(found):
            return {}  # its vector index is damaged: never opened, everything is embedded
        try:
            store, _ = self.stores(gen)
            if not store.exists():
                return {}
        except Exception:
            if gen.id not in self.damaged:
                raise
            return {}
        out: dict[str, Any] = {}
        step = store.batch_size
        for start in range(0, len(ids), step):
            part = ids[start : start + step]
            try:
                got = store.embeddings_for(part)
            except Exception as exc:
                if gen.id not in self.damaged:
                    raise
                log.warning("%d vectors could not be read back: %s", len(part), exc)
                continue
            if not got:
                continue
            keys = list(got)
            matrix = np.asarray([np.asarray(got[k], dtype=np.float32).ravel() for k in keys])
            if matrix.ndim != 2 or matrix.shape[1] != gen.embedding_dim:
                continue
            norms = np.linalg.norm(matrix, axis=1)
            good = np.isfinite(matrix).all(axis=1) & (np.abs(norms - 1.0) < 0.02)
            out.update((k, matrix[i]) for i, k in enumerate(keys) if good[i])
        return out

    def sentences_back(self, gen: Generation, ids: list[str]) -> dict[str, Any]:
        """``gen``'s stored sentence vectors of ``ids``; none when its keyword index is
        damaged (they are computed again when a query needs them)."""
        try:
            return self.stores(gen)[1].sentence_vectors(ids)
        except Exception as exc:
            if gen.id not in self.damaged:
                raise
            log.info("sentence vectors of generation %s not read: %s", gen.id, exc)
            return {}
