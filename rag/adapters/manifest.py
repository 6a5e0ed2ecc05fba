"""What the index holds, per file and per generation: SQLite in WAL mode beside the index.

The manifest is the index's table of contents.  Each *generation* is one complete build
(one Chroma collection plus one keyword index) made with one embedding model and one
chunker; exactly one is active (queries use it) and at most one is being built beside it.
Per generation, a row per file records its path, sha256, size, mtime, chunk ids and status:

- ``pending``: its chunks are being written (or were, when a crash hit); not complete;
- ``complete``: every listed chunk is in Chroma and in the keyword index;
- ``recovered``: rebuilt from Chroma after the manifest was damaged; verified by the next
  ingest (chunks are compared by content hash, nothing is re-embedded when they match).

Every change is one SQLite transaction, so a kill at any moment leaves the previous or the
next state, never a mix.  A manifest that is torn (truncated, overwritten, emptied) is
detected when opened (:class:`ManifestDamagedError`), never read as an empty index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from pathlib import Path

from rag.adapters.faults import disk_full_error, is_disk_full
from rag.errors import IndexStateError, ManifestDamagedError
from rag.models import now

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
FILE_NAME = "manifest.sqlite"
LEGACY_FILE = "manifest.json"  # rag before generations; such an index is rebuilt
ACTIVE_FILE = "ACTIVE.json"  # which generation is active, for rebuilding a lost manifest

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE generations(
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    embedding_model TEXT NOT NULL,
    embedding_dim INTEGER NOT NULL,
    chunker TEXT NOT NULL,
    collection TEXT NOT NULL,
    lexical TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE files(
    generation INTEGER NOT NULL REFERENCES generations(id),
    path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'recovered')),
    chunk_ids TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    PRIMARY KEY (generation, path)
);
"""


@dataclass(frozen=True)
class Generation:
    id: int
    state: str
    embedding_model: str
    embedding_dim: int
    chunker: str
    collection: str
    lexical: str  # file name inside the index folder
    created_at: str = ""

    def builds(self, embedding_model: str, embedding_dim: int, chunker: str) -> bool:
        return (self.embedding_model, self.embedding_dim, self.chunker) == (
            embedding_model,
            embedding_dim,
            chunker,
        )


@dataclass
class FileEntry:
    path: str
    abs_path: str
    sha256: str
    size: int
    mtime: float
    chunk_ids: list[str]
    ingested_at: str
    status: str = "complete"


class ManifestDB:
    """The manifest of one index folder.  Thread-safe; one connection per instance."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.path = index_dir / FILE_NAME
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    # -- opening -------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def connect(self, create: bool = False) -> sqlite3.Connection:
        """The open database; checks it is whole.  Raises ManifestDamagedError if not."""
        with self._lock:
            if self._db is not None:
                return self._db
            fresh = not self.path.exists()
            if fresh and not create:
                raise IndexStateError(f"no manifest at {self.path}", "build it with `rag ingest`")
            if not fresh and self.path.stat().st_size == 0:
                raise self._damaged("the file is empty")
            self.index_dir.mkdir(parents=True, exist_ok=True)
            if fresh:
                self._create()
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout=10000")
                check = db.execute("PRAGMA quick_check").fetchone()
                if not check or check[0] != "ok":
                    raise self._damaged(f"integrity check: {check[0] if check else '?'}")
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None or row[0] != str(SCHEMA_VERSION):
                    raise self._damaged(f"schema version {row[0] if row else 'missing'}")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as exc:
                db.close()
                if not is_disk_full(exc, self.index_dir):
                    raise self._damaged(str(exc)) from None
                if create:
                    raise disk_full_error(self.index_dir) from None
                db = self._open_snapshot()  # a reader keeps reading the last good state
            except ManifestDamagedError:
                db.close()
                raise
            self._db = db
            return db

    def _open_snapshot(self) -> sqlite3.Connection:
        """Read-only, without the shared-memory file SQLite wants beside a WAL database (it
        cannot be made on a full disk): the state the file holds, for readers only."""
        log.warning("no space left beside %s: reading it as it is, read-only", self.path)
        uri = f"{self.path.resolve().as_uri()}?immutable=1"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                raise self._damaged(f"schema version {row[0] if row else 'missing'}")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise self._damaged(str(exc)) from None
        except ManifestDamagedError:
            db.close()
            raise
        return db

    def _create(self) -> None:
        """A new, empty manifest, made whole in a temporary file and renamed into place."""
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT INTO meta VALUES ('revision', '0')")
        finally:
            db.close()
        os.replace(tmp, self.path)

    def _damaged(self, why: str) -> ManifestDamagedError:
        return ManifestDamagedError(
            f"the index manifest {self.path} is damaged ({why})",
            "run `rag ingest` to rebuild it from the vector index (or `rag ingest --rebuild`)",
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def set_aside(self) -> Path:
        """Move a damaged manifest out of the way (kept for inspection); returns where."""
        self.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{FILE_NAME}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(target) + suffix))
        return target

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change; bumps the revision readers use to notice changes."""
        db = self.connect(create=True)
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='revision'"
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        db = self.connect()
        with self._lock:
            return list(db.execute(sql, args).fetchall())

    # -- meta ------------------------------------------------------------------
    def revision(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key='revision'")
        return int(str(rows[0][0])) if rows else 0

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- generations -------------------------------------------------------
    def generations(self) -> list[Generation]:
        rows = self._read(
            "SELECT id, state, embedding_model, embedding_dim, chunker, collection, lexical, "
            "created_at FROM generations ORDER BY id"
        )
        return [Generation(*row) for row in rows]  # type: ignore[arg-type]

    def active(self) -> Generation | None:
        return next((g for g in self.generations() if g.state == "active"), None)

    def building(self) -> Generation | None:
        return next((g for g in self.generations() if g.state == "building"), None)

    def new_generation(
        self, embedding_model: str, embedding_dim: int, chunker: str, collection_base: str
    ) -> Generation:
        with self.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM generations").fetchone()
            gid = int(row[0])
            gen = Generation(
                gid,
                "building",
                embedding_model,
                embedding_dim,
                chunker,
                f"{collection_base}-g{gid}",
                f"lexical-g{gid}.sqlite",
                now(),
            )
            db.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row(gen))
        return gen

    def activate(self, gid: int) -> None:
        """Make generation ``gid`` the one queries use; the previous one is retired.  Atomic."""
        with self.transaction() as db:
            db.execute("UPDATE generations SET state='retired' WHERE state='active'")
            db.execute("UPDATE generations SET state='active' WHERE id=?", (gid,))
        gen = next(g for g in self.generations() if g.id == gid)
        _write_active_file(self.index_dir, gen)

    def forget(self, gid: int) -> None:
        """Remove a generation's rows (after its collection and keyword index are gone)."""
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE generation=?", (gid,))
            db.execute("DELETE FROM generations WHERE id=?", (gid,))

    def restore_generation(self, gen: Generation) -> None:
        """Re-create a generation row as it was (rebuilding a damaged manifest)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row(gen)
            )

    # -- files ---------------------------------------------------------------
    def files(self, gid: int, statuses: tuple[str, ...] | None = None) -> dict[str, FileEntry]:
        rows = self._read(
            "SELECT path, abs_path, sha256, size, mtime, chunk_ids, ingested_at, status "
            "FROM files WHERE generation=? ORDER BY path",
            (gid,),
        )
        out = {}
        for path, abs_path, sha, size, mtime, ids, at, status in rows:
            if statuses is None or status in statuses:
                out[str(path)] = FileEntry(
                    str(path),
                    str(abs_path),
                    str(sha),
                    int(size),  # type: ignore[call-overload]
                    float(mtime),  # type: ignore[arg-type]
                    list(json.loads(str(ids))),
                    str(at),
                    str(status),
                )
        return out

    def put_file(self, gid: int, entry: FileEntry) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    gid,
                    entry.path,
                    entry.abs_path,
                    entry.sha256,
                    entry.size,
                    entry.mtime,
                    entry.status,
                    json.dumps(entry.chunk_ids),
                    entry.ingested_at,
                ),
            )

    def set_status(self, gid: int, path: str, status: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET status=? WHERE generation=? AND path=?", (status, gid, path)
            )

    def remove_file(self, gid: int, path: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE generation=? AND path=?", (gid, path))


def _row(gen: Generation) -> tuple[object, ...]:
    """A generation as a row of the ``generations`` table, columns in table order."""
    return astuple(gen)


def _write_active_file(index_dir: Path, gen: Generation) -> None:
    """Which generation is active, outside the manifest, so a lost manifest can be rebuilt."""
    payload = json.dumps(gen.__dict__ | {"state": "active"}, indent=1)
    tmp = index_dir / f".{ACTIVE_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / ACTIVE_FILE)


def read_active_file(index_dir: Path) -> Generation | None:
    try:
        raw = json.loads((index_dir / ACTIVE_FILE).read_text(encoding="utf-8"))
        return Generation(**raw)
    except (OSError, ValueError, TypeError):
        return None


@dataclass
class Manifest:
    """A snapshot of the active generation's documents (what readers list and cite)."""

    embedding_model: str = ""
    chunker: str = ""
    files: dict[str, FileEntry] = field(default_factory=dict)
    generation: int = 0

    @classmethod
    def load(cls, index_dir: Path) -> Manifest:
        """The active generation's documents; empty when no index was built yet.

        A damaged manifest raises ManifestDamagedError, never reads as empty.
        """
        db = ManifestDB(index_dir)
        if not db.exists():
            return cls()
        try:
            gen = db.active()
            if gen is None:
                return cls()
            files = db.files(gen.id, ("complete", "recovered"))
            return cls(gen.embedding_model, gen.chunker, files, gen.id)
        finally:
            db.close()

    @staticmethod
    def stamp(index_dir: Path) -> object:
        """Changes whenever the manifest may have changed (cheap: two stat calls)."""
        out: list[tuple[int, int, int] | None] = []
        for suffix in ("", "-wal"):
            try:
                st = (index_dir / (FILE_NAME + suffix)).stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    @property
    def chunk_count(self) -> int:
        return sum(len(f.chunk_ids) for f in self.files.values())

    def version(self) -> str:
        """A short hash of what the index holds: each document's content and the index's
        build (the ``index_version`` answers report)."""
        digest = hashlib.sha256()
        digest.update(f"{self.embedding_model}\n{self.chunker}\n".encode())
        for path, entry in sorted(self.files.items()):
            digest.update(f"{path}\x00{entry.sha256}\n".encode())
        return digest.hexdigest()[:12]
