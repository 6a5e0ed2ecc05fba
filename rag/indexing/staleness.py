"""Staleness: how the index differs from the corpus folder (``rag ask``'s warning, ``rag
status``), read-only; the ingest that would mend it is :mod:`rag.indexing.ingest`."""

from __future__ import annotations

from pathlib import Path

from rag.adapters.generations import GenerationStores
from rag.adapters.manifest import FileEntry, ManifestDB
from rag.adapters.store import IndexInfo
from rag.config import Settings
from rag.errors import ManifestDamagedError
from rag.indexing.integrity import damage
from rag.indexing.loader import Document, Skipped, discover, read
from rag.indexing.recovery import builds_wanted


def stale_reason(
    settings: Settings, manifest: ManifestDB, stores: GenerationStores, wanted: IndexInfo
) -> str | None:
    """Why the index does not match the corpus folder, or None when it does."""
    if not manifest.exists():
        return "no index yet"
    try:
        active = manifest.active()
    except ManifestDamagedError:
        return "the manifest is damaged"
    if active is None:
        return "an ingest was interrupted" if manifest.building() else "no index yet"
    if not builds_wanted(active, wanted):
        return "the index was built with other embedding or chunking settings"
    if manifest.get_meta("dirty") is not None:
        return "an ingest was interrupted"
    files = manifest.files(active.id)
    if unfinished := [p for p, e in files.items() if e.status != "complete"]:
        return f"{len(unfinished)} document(s) not finished, e.g. {unfinished[0]}"
    if not files:
        return "the index lists no documents"
    if found := damage(settings, active):  # not opened: `--rebuild` heals it
        return f"damaged: {'; '.join(found)}"
    store, lexical = stores(active)
    listed = sum(len(e.chunk_ids) for e in files.values())
    held = store.count() if store.exists() else 0
    if held != listed:  # e.g. a new or emptied Chroma server
        return f"the vector store holds {held} chunks; the manifest lists {listed}"
    if lexical.count() != listed:
        return "the keyword index is out of step with the vector index"
    found_changes = changes(settings, files)
    return found_changes[0] if found_changes else None


def changes(
    settings: Settings,
    files: dict[str, FileEntry],
    limit: int = 1,
    links: list[Skipped] | None = None,
) -> list[str]:
    """How the corpus folder differs from ``files`` (at most ``limit`` reasons); links
    out of the corpus folder, never read, are added to ``links``."""
    out: list[str] = []
    sources = discover([settings.corpus_dir], settings.corpus_dir, links)
    current = {s.rel_path: s for s in sources}
    corpus = settings.corpus_dir.resolve()
    listed = {k for k, v in files.items() if Path(v.abs_path).is_relative_to(corpus)}
    for gone in sorted(listed - current.keys()):
        out.append(f"removed from the corpus: {gone}")
        if len(out) >= limit:
            return out
    for rel, source in current.items():
        entry = files.get(rel)
        if entry is None:
            if isinstance(read(source, settings.max_file_bytes), Document):
                out.append(f"new document {rel}")
        else:
            stat = source.abs_path.stat()
            if stat.st_size != entry.size or stat.st_mtime != entry.mtime:
                doc = read(source, settings.max_file_bytes)
                if not isinstance(doc, Document) or doc.sha256 != entry.sha256:
                    out.append(f"changed document {rel}")
        if len(out) >= limit:
            return out
    return out
