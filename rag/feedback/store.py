"""The feedback store: ``feedback.sqlite`` beside the index (SQLite in WAL mode, local only).

One row per marked answer.  The row's columns are what is searched (mark, times); the
record itself is JSON (``FeedbackRecord`` without its computed state), so a record written
by `rag serve` reads the same in `rag feedback export`, another process on the same folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from rag.adapters.sqlite_db import connect_wal
from rag.errors import FeedbackNotFoundError
from rag.feedback.records import FeedbackRecord

FILE_NAME = "feedback.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    mark TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_updated ON feedback(updated_at);
"""
_COMPUTED = {"id", "created_at", "updated_at", "state", "problems"}


class FeedbackStore:
    """The ``feedback`` table of one index folder; thread-safe, one connection."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / FILE_NAME
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect_wal(self.path, _SCHEMA)
        return self._db

    def exists(self) -> bool:
        return self._db is not None or self.path.is_file()

    def add(self, record: FeedbackRecord) -> FeedbackRecord:
        """Store ``record`` as a new row; returns it with its id."""
        body = _body(record)
        with self._lock:
            cursor = self._connect().execute(
                "INSERT INTO feedback(created_at, updated_at, mark, body) VALUES (?, ?, ?, ?)",
                (record.created_at, record.updated_at, record.mark, body),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return record.model_copy(update={"id": new_id})

    def replace(self, record: FeedbackRecord) -> FeedbackRecord:
        """Overwrite row ``record.id`` (its creation time is kept)."""
        with self._lock:
            cursor = self._connect().execute(
                "UPDATE feedback SET updated_at = ?, mark = ?, body = ? WHERE id = ?",
                (record.updated_at, record.mark, _body(record), record.id),
            )
        if cursor.rowcount == 0:
            raise _missing(record.id)
        return self.get(record.id)

    def get(self, record_id: int) -> FeedbackRecord:
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT id, created_at, updated_at, body FROM feedback WHERE id = ?",
                    (record_id,),
                )
                .fetchone()
            )
        if row is None:
            raise _missing(record_id)
        return _record(row)

    def all(self, limit: int | None = None) -> list[FeedbackRecord]:
        """Newest first; none at all (and no file made) when nothing was marked yet."""
        if not self.exists():
            return []
        query = "SELECT id, created_at, updated_at, body FROM feedback ORDER BY id DESC"
        args: tuple[int, ...] = ()
        if limit is not None:
            query += " LIMIT ?"
            args = (limit,)
        with self._lock:
            rows = self._connect().execute(query, args).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _body(record: FeedbackRecord) -> str:
    # ASCII: JSON escapes carry any text (a lone surrogate too, which UTF-8 cannot)
    return json.dumps(record.model_dump(mode="json", exclude=_COMPUTED))


def _record(row: tuple[Any, ...]) -> FeedbackRecord:
    record_id, created_at, updated_at, body = row
    data = json.loads(body)
    return FeedbackRecord(id=record_id, created_at=created_at, updated_at=updated_at, **data)


def _missing(record_id: int) -> FeedbackNotFoundError:
    return FeedbackNotFoundError(
        f"no feedback record {record_id}", "GET /v1/feedback (or `rag feedback list`) lists them"
    )
