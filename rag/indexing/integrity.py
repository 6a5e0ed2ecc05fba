"""Is a generation of the index whole?  The cheap check at every open, the full one on demand.

Cheap (before Chroma or the keyword index is opened; milliseconds for a small index): each
SQLite file's header and ``quick_check`` (:mod:`rag.adapters.integrity`), Chroma's HNSW
files against their header.  Full (``rag status --check``): ``integrity_check`` instead,
FTS5's own check of the keyword table, and a sample of the stored vectors read back (each
whole: the right length, finite, unit length) and found again by a vector query.

A damaged generation is reported as ``damaged: WHAT`` with the hint to run
``rag ingest --rebuild``, which builds a new generation from the documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.adapters.faults import REBUILD_HINT
from rag.adapters.integrity import check_fts, check_hnsw, check_sqlite, hnsw_segments
from rag.adapters.manifest import Generation
from rag.config import Settings
from rag.errors import IndexDamagedError

if TYPE_CHECKING:
    from rag.adapters.store import ChromaStore

SAMPLE = 256  # vectors read back by the full check
KEYWORD = "the keyword index"  # how damage of the keyword index is named


def chroma_damage(settings: Settings, full: bool = False) -> str | None:
    """What is wrong with the embedded Chroma's own database (None: whole, or a server)."""
    if settings.chroma_url:
        return None
    db = settings.chroma_path / "chroma.sqlite3"
    if not db.exists():
        return None
    problem = check_sqlite(db, full)
    return None if problem is None else f"Chroma's database {db}: {problem}"


def damage(settings: Settings, gen: Generation, full: bool = False) -> list[str]:
    """What is wrong with the files of generation ``gen`` (empty: nothing found)."""
    found: list[str] = []
    lexical = settings.index_dir / gen.lexical
    if lexical.exists():
        problem = check_sqlite(lexical, full)
        if problem is None and full:
            problem = check_fts(lexical, "chunks_fts")
        if problem is not None:
            found.append(f"{KEYWORD} {lexical}: {problem}")
    chroma = chroma_damage(settings, full)
    if chroma is not None:
        found.append(chroma)
    elif not settings.chroma_url and (settings.chroma_path / "chroma.sqlite3").exists():
        try:
            folders = hnsw_segments(settings.chroma_path / "chroma.sqlite3", gen.collection)
        except Exception as exc:  # a database that passed its check but lacks Chroma's tables
            folders = []
            found.append(f"Chroma's database cannot be read ({exc})")
        for folder in folders:
            problem = check_hnsw(folder)
            if problem is not None:
                found.append(f"Chroma's vector index {folder}: {problem}")
    return found


def vectors_readable(found: Sequence[str]) -> bool:
    """Can the vectors of a generation with this damage be read back?  Only when the damage
    is in its keyword index: Chroma loading cut HNSW files can crash the whole process."""
    return all(item.startswith(KEYWORD) for item in found)


def damaged_error(found: Sequence[str]) -> IndexDamagedError:
    return IndexDamagedError(f"damaged: {'; '.join(found)}", REBUILD_HINT)


def whole(vector: object, dim: int) -> bool:
    """A vector read back whole: ``dim`` finite numbers of unit length (rag normalizes)."""
    try:
        values = [float(v) for v in vector]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    if len(values) != dim or not all(math.isfinite(v) for v in values):
        return False
    return abs(math.sqrt(sum(v * v for v in values)) - 1.0) < 0.02


def vector_damage(store: ChromaStore, ids: Sequence[str], dim: int) -> str | None:
    """Read a sample of ``ids`` back from ``store``; is each vector whole and found again?"""
    if not ids:
        return None
    step = max(1, len(ids) // SAMPLE)
    sample = list(ids[::step])[:SAMPLE]
    try:
        vectors = store.embeddings_for(sample)
    except Exception as exc:
        return f"its vectors cannot be read back ({exc.__class__.__name__}: {str(exc)[:120]})"
    bad = [i for i in sample if i not in vectors or not whole(vectors[i], dim)]
    if bad:
        return f"{len(bad)} of {len(sample)} sampled vectors cannot be read back whole"
    probe = sample[0]
    try:
        import numpy as np

        hits = store.query(np.asarray(vectors[probe], dtype=np.float32), 10)
    except Exception as exc:
        return f"a vector query fails ({exc.__class__.__name__}: {str(exc)[:120]})"
    if probe not in {p.chunk.id for p in hits}:
        return "a stored vector's own query does not find it (the vector index is damaged)"
    return None
