"""`rag status`: what the index holds and whether it is in step with the files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rag.adapters.lock import describe_holder, holder_of
from rag.errors import ManifestDamagedError, RagError
from rag.indexing.ingest import IngestService
from rag.indexing.integrity import damage, vector_damage
from rag.indexing.loader import Skipped


@dataclass
class IndexStatus:
    index_dir: str
    exists: bool
    generation: int | None = None
    building: int | None = None
    embedding_model: str = ""
    chunker: str = ""
    settings_match: bool = True
    documents: int = 0
    unfinished: int = 0
    chunks_listed: int = 0
    chunks_vector: int | None = None
    chunks_keyword: int | None = None
    size_bytes: int = 0
    writer: str | None = None
    out_of_sync: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # what the integrity check found
    checked: str = "quick"  # "quick": headers, sizes, quick_check; "full": `--check`
    skipped_links: list[str] = field(default_factory=list)  # "path: reason", never read

    @property
    def in_sync(self) -> bool:
        return self.exists and not self.out_of_sync

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"in_sync": self.in_sync}


def index_status(service: IngestService, limit: int = 20, full: bool = False) -> IndexStatus:
    """Read-only: never repairs (that is the next writer's job), never blocks on a writer.

    ``full``: the full integrity check (every page, the keyword table, sampled vectors read
    back) instead of the cheap one."""
    settings = service.settings
    status = IndexStatus(index_dir=str(settings.index_dir), exists=service.manifest.exists())
    status.checked = "full" if full else "quick"
    holder = holder_of(settings.index_dir)
    status.writer = describe_holder(holder) if holder is not None else None
    if not status.exists:
        status.out_of_sync.append("no index yet: run `rag ingest`")
        return status
    status.size_bytes = service.index_size()
    try:
        active = service.manifest.active()
        building = service.manifest.building()
    except ManifestDamagedError as exc:
        status.out_of_sync.append(f"{exc.message}; {exc.hint}")
        return status
    status.building = building.id if building else None
    if building is not None:
        status.out_of_sync.append(f"generation {building.id} is being built (or was interrupted)")
    if active is None:
        status.exists = False
        status.out_of_sync.append("no complete index yet: run `rag ingest`")
        return status
    w = service.wanted
    status.generation = active.id
    status.embedding_model, status.chunker = active.embedding_model, active.chunker
    status.settings_match = active.builds(w.embedding_model, w.embedding_dim, w.chunker)
    if not status.settings_match:
        status.out_of_sync.append(
            f"built with {active.embedding_model} / {active.chunker}; the settings ask for "
            f"{w.embedding_model} / {w.chunker} (`rag ingest` rebuilds beside it)"
        )
    files = service.manifest.files(active.id)
    done = {p: e for p, e in files.items() if e.status in ("complete", "recovered")}
    status.documents = len(done)
    status.unfinished = len(files) - len(done)
    status.chunks_listed = sum(len(e.chunk_ids) for e in done.values())
    status.damaged = damage(settings, active, full)
    if status.damaged:  # not opened: reading a damaged store fails, or answers wrong
        status.out_of_sync.extend(
            f"damaged: {d}, run `rag ingest --rebuild`" for d in status.damaged
        )
        return status
    if status.unfinished:
        status.out_of_sync.append(f"{status.unfinished} document(s) not finished")
    if service.manifest.get_meta("dirty") is not None and status.writer is None:
        status.out_of_sync.append("an ingest was interrupted (the next `rag ingest` repairs it)")
    store, lexical = service.stores(active)
    status.chunks_keyword = lexical.count()
    if status.writer is None:  # embedded Chroma: do not open it while another process writes
        try:
            status.chunks_vector = store.count() if store.exists() else 0
        except RagError:
            status.chunks_vector = None
    if full and status.writer is None and status.chunks_vector:
        ids = [cid for e in done.values() for cid in e.chunk_ids]
        problem = vector_damage(store, ids, active.embedding_dim)
        if problem is not None:
            status.damaged.append(f"the vector index {store.where}: {problem}")
            status.out_of_sync.append(f"damaged: {status.damaged[-1]}, run `rag ingest --rebuild`")
    all_listed = sum(len(e.chunk_ids) for e in files.values())
    for name, count in (("vector", status.chunks_vector), ("keyword", status.chunks_keyword)):
        if count is not None and count != all_listed:
            status.out_of_sync.append(
                f"the {name} index holds {count} chunks; the manifest lists {all_listed}"
            )
    links: list[Skipped] = []
    status.out_of_sync.extend(service.changes(files, limit=limit, links=links))
    status.skipped_links = [f"{s.path}: {s.reason}" for s in links]
    return status
