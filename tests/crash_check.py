"""Recover an index after a crash, then check its invariants; prints JSON.

Run as ``python -m tests.crash_check INDEX_DIR CORPUS_DIR`` in its own process (embedded
Chroma allows one process per path, so the test process never opens the index itself while
a child writes it).  It needs no embedding model: recovery does not embed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def check(index_dir: Path, corpus_dir: Path) -> dict[str, Any]:
    from rag.adapters.generations import GenerationStores
    from rag.adapters.manifest import ManifestDB
    from rag.adapters.store import IndexInfo
    from rag.config import Settings
    from rag.indexing.ingest import IngestService

    settings = Settings(index_dir=index_dir, corpus_dir=corpus_dir)
    manifest = ManifestDB(index_dir)
    stores = GenerationStores(settings)
    if not manifest.exists():
        return {"violations": [], "generations": [], "notes": ["no manifest yet"]}
    violations: list[str] = []
    before = _complete_but_missing(manifest, stores)  # what a crash left, before repair
    violations.extend(f"before recovery: {v}" for v in before)
    gens = manifest.generations()
    model = gens[-1] if gens else None
    wanted = IndexInfo(model.embedding_model, model.embedding_dim, model.chunker) if model else None
    service = IngestService(settings, None, manifest, stores, None, wanted)  # type: ignore[arg-type]
    notes = service.check()
    summary: list[dict[str, Any]] = []
    for gen in manifest.generations():
        store, lexical = stores(gen)
        if not store.exists():
            violations.append(f"generation {gen.id} ({gen.state}) has no collection")
            continue
        files = manifest.files(gen.id)
        got = store.collection.get(include=["metadatas"])
        in_store = dict(zip(got["ids"], got["metadatas"], strict=True))
        listed = {cid: entry.path for entry in files.values() for cid in entry.chunk_ids}
        for entry in files.values():
            missing = [c for c in entry.chunk_ids if c not in in_store]
            if entry.status == "complete" and missing:
                violations.append(f"{entry.path} complete but {len(missing)} chunk(s) missing")
        orphans = [c for c in in_store if c not in listed]
        if orphans:
            violations.append(f"{len(orphans)} orphan chunk(s) in Chroma")
        wrong = [c for c, meta in in_store.items() if c in listed and meta["path"] != listed[c]]
        if wrong:
            violations.append(f"{len(wrong)} chunk(s) filed under another path")
        spans = [(m["path"], m["start_line"], m["start_char"]) for m in in_store.values()]
        if len(spans) != len(set(spans)):
            violations.append("duplicate chunks (same path and position)")
        lex = lexical.ids()
        if lex != set(in_store):
            violations.append(
                f"keyword index differs: {len(lex - set(in_store))} extra, "
                f"{len(set(in_store) - lex)} missing"
            )
        by_path: dict[str, list[str]] = {}
        for cid, meta in in_store.items():
            by_path.setdefault(str(meta["path"]), []).append(cid)
        summary.append(
            {
                "id": gen.id,
                "state": gen.state,
                "files": {p: e.status for p, e in files.items()},
                "chunks": len(in_store),
                "ids": {p: sorted(ids) for p, ids in by_path.items()},
            }
        )
    if manifest.get_meta("dirty") is not None:
        violations.append("still marked dirty after recovery")
    return {"violations": violations, "generations": summary, "notes": notes}


def _complete_but_missing(manifest: Any, stores: Any) -> list[str]:
    """Files the manifest calls complete whose chunks are not all stored (must never be)."""
    out = []
    for gen in manifest.generations():
        store, _ = stores(gen)
        if not store.exists():
            continue
        stored = store.all_ids()
        for entry in manifest.files(gen.id).values():
            if entry.status == "complete" and not set(entry.chunk_ids) <= stored:
                out.append(f"{entry.path} (generation {gen.id}) complete with missing chunks")
    return out


if __name__ == "__main__":
    print(json.dumps(check(Path(sys.argv[1]), Path(sys.argv[2]))))
