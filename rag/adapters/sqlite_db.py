"""A small SQLite file of the index folder kept by one process-wide connection (the feedback
store, the ingest jobs' store): created on first use, WAL, waiting for a writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect_wal(path: Path, schema: str) -> sqlite3.Connection:
    """A connection to ``path`` (made with its folder if missing) usable from any thread
    (callers serialise), autocommit, in WAL mode, with ``schema`` applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db
