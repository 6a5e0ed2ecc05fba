"""Integrity checks of the files an index is made of, read-only and before anyone trusts them.

- SQLite files (the keyword index, Chroma's ``chroma.sqlite3``): the header (magic, page
  size, a file as long as the pages it claims), then ``PRAGMA quick_check`` when the file is
  small enough for it to be quick (``QUICK_CHECK_BYTES``), or ``integrity_check`` when asked
  for the full check.  Opened read-only: a check never creates or changes a file.
- Chroma's HNSW segment folders: ``header.bin`` read as hnswlib writes it, the other files at
  least as long as it says, and ``index_metadata.pickle`` readable.  Chroma itself would load
  a cut file silently (answers get worse) or fail deep inside a query.

Each check returns what is wrong in a few words, or None when the file looks whole.
"""

from __future__ import annotations

import pickle
import sqlite3
import struct
from pathlib import Path

from rag.adapters.faults import is_disk_full

SQLITE_MAGIC = b"SQLite format 3\x00"
QUICK_CHECK_BYTES = 256 << 20  # quick_check reads every page: about 1 s per 256 MiB
HNSW_HEADER = struct.Struct("<QQQQQQiIQQQdQ")  # hnswlib's saveIndex header, in order
HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
HNSW_SEGMENT = "urn:chroma:segment/vector/hnsw-local-persisted"


def sqlite_header(path: Path) -> str | None:
    """Does ``path`` start like a SQLite database and hold every page its header counts?"""
    try:
        with open(path, "rb") as handle:
            head = handle.read(100)
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "the file is empty"
    if len(head) < 100 or head[:16] != SQLITE_MAGIC:
        return "not a SQLite database (its header is gone)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return f"its header names an impossible page size ({page})"
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the in-header size is valid only when these agree
    if valid and pages and size < pages * page:
        return f"cut short: {size} bytes, its header counts {pages} pages of {page}"
    return None


def _open_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """Read-only; ``immutable``: not even the shared-memory file of a WAL database is made
    (a full disk has no room for it)."""
    flag = "immutable=1" if immutable else "mode=ro"
    db = sqlite3.connect(f"{path.resolve().as_uri()}?{flag}", uri=True, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _pragma(path: Path, pragma: str) -> list[tuple[object, ...]]:
    for immutable in (False, True):
        try:
            db = _open_readonly(path, immutable)
            try:
                return list(db.execute(f"PRAGMA {pragma}(5)").fetchall())
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if immutable or not is_disk_full(exc, path.parent):
                raise
    raise AssertionError("unreachable")


def check_sqlite(path: Path, full: bool = False) -> str | None:
    """What is wrong with the SQLite file at ``path`` (None: it looks whole)."""
    problem = sqlite_header(path)
    if problem is not None:
        return problem
    if not full and path.stat().st_size > QUICK_CHECK_BYTES:
        return None
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = _pragma(path, pragma)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return None  # a writer holds it: not a sign of damage
        return f"cannot be read ({exc})"
    except sqlite3.DatabaseError as exc:
        return str(exc)
    found = [
        line.strip()
        for r in rows
        if r and r[0] != "ok"
        for line in str(r[0]).splitlines()
        if line.strip() and not line.startswith("***")
    ]
    return "; ".join(found[:3])[:300] if found else None


def check_fts(path: Path, table: str) -> str | None:
    """FTS5's own integrity check of ``table`` (the full check: it reads the whole index).
    A command written as an INSERT, so not on a read-only connection; it changes nothing."""
    try:
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        try:
            db.execute(f"INSERT INTO {table}({table}) VALUES ('integrity-check')")
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return None
        return f"its keyword table fails its check ({exc})"
    except sqlite3.DatabaseError as exc:
        return f"its keyword table fails its check ({exc})"
    return None


def hnsw_segments(chroma_sqlite: Path, collection: str) -> list[Path]:
    """The HNSW folders of ``collection`` in the Chroma folder of ``chroma_sqlite`` (those
    that exist: Chroma writes one only after its first batch is flushed)."""
    db = _open_readonly(chroma_sqlite)
    try:
        rows = db.execute(
            "SELECT s.id FROM segments s JOIN collections c ON c.id = s.collection "
            "WHERE c.name = ? AND s.type = ?",
            (collection, HNSW_SEGMENT),
        ).fetchall()
    finally:
        db.close()
    folders = [chroma_sqlite.parent / str(row[0]) for row in rows]
    return [f for f in folders if f.is_dir()]


def check_hnsw(folder: Path) -> str | None:
    """What is wrong with one HNSW segment folder (None: its files agree with its header)."""
    sizes: dict[str, int] = {}
    for name in HNSW_FILES:
        try:
            sizes[name] = (folder / name).stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
    try:
        with open(folder / "header.bin", "rb") as handle:
            raw = handle.read(HNSW_HEADER.size + 4)
    except OSError as exc:
        return f"header.bin cannot be read ({exc.strerror or exc})"
    if len(raw) == HNSW_HEADER.size + 4:  # Chroma's hnswlib: a 4-byte format version first
        raw = raw[4:]
    if len(raw) < HNSW_HEADER.size:
        return f"header.bin is cut short ({len(raw)} of {HNSW_HEADER.size} bytes)"
    fields = HNSW_HEADER.unpack(raw)
    max_elements, count, per_element = fields[1], fields[2], fields[3]
    if count > max_elements or per_element == 0 or per_element > 1 << 20:
        return "header.bin holds impossible values"
    need = count * per_element
    if sizes["data_level0.bin"] < need:
        return (
            f"data_level0.bin is cut short ({sizes['data_level0.bin']} bytes; "
            f"its header needs {need})"
        )
    if sizes["length.bin"] < count * 4:
        return f"length.bin is cut short ({sizes['length.bin']} bytes for {count} vectors)"
    meta = folder / "index_metadata.pickle"
    if meta.exists():
        try:
            with open(meta, "rb") as handle:
                data = pickle.load(handle)
        except Exception as exc:
            return f"index_metadata.pickle cannot be read ({exc.__class__.__name__})"
        labels = _labels(data)
        if labels is not None and labels > count:
            return f"index_metadata.pickle names {labels} vectors; the index holds {count}"
    return None


def _labels(data: object) -> int | None:
    """How many vectors Chroma's pickled metadata maps to labels (None: another layout)."""
    mapping = data.get("id_to_label") if isinstance(data, dict) else None
    if mapping is None:
        mapping = getattr(data, "id_to_label", None)
    return len(mapping) if isinstance(mapping, dict) else None
