"""Ingest job records shared by every API worker of one index folder.

Several API workers (`rag serve --workers N`, or several hosts behind a proxy) share one
index folder; a client that started a job on one worker may poll ``GET /v1/ingest/{job}``
on another.  So each worker writes its jobs' records to ``jobs.sqlite`` in the index folder
(SQLite in WAL mode: many readers, one writer at a time, short transactions) and reads
jobs it does not run itself from there.  A job runs on the worker that accepted it; its
record names that worker (pid and host), so a job whose worker died on this host is
reported as failed instead of "running" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

from rag.adapters.sqlite_db import connect_wal
from rag.api.jobs.records import JobError, JobStatus

log = logging.getLogger(__name__)

FILE_NAME = "jobs.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""
UNFINISHED = ("queued", "running")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class JobStore:
    """The ``jobs`` table of one index folder; thread-safe, one connection per instance."""

    def __init__(self, index_dir: Path, keep: int = 200) -> None:
        self.path = index_dir / FILE_NAME
        self.keep = keep
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect_wal(self.path, _SCHEMA)
        return self._db

    def put(self, status: JobStatus) -> None:
        """Record ``status`` as this worker's job (replacing the previous record)."""
        body = status.model_dump_json()
        with self._lock:
            db = self._connect()
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (status.id, status.state, self.pid, self.host, status.created_at, time.time(),
                 body),
            )  # fmt: skip
            if status.finished_at:
                db.execute(
                    "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND id NOT IN "
                    "(SELECT id FROM jobs WHERE state NOT IN ('queued', 'running') "
                    "ORDER BY created_at DESC, updated DESC LIMIT ?)",
                    (self.keep,),
                )

    def get(self, job_id: str) -> JobStatus | None:
        """The job's last record, or None.  An unfinished job whose worker is gone (on this
        host) is reported as failed."""
        with self._lock:
            db = self._connect()
            row = db.execute("SELECT pid, host, status FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        pid, host, body = int(row[0]), str(row[1]), str(row[2])
        status = JobStatus.model_validate_json(body)
        if status.state in UNFINISHED and host == self.host and not _alive(pid):
            status.state = "failed"
            status.errors.append(
                JobError(
                    code="worker_gone",
                    message=f"the API worker that ran this job (pid {pid}) stopped",
                    hint="submit the job again; documents it finished are kept",
                )
            )
        return status

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
