"""Ingest jobs: run one at a time, on one worker thread, with progress a client can poll.

Embedded Chroma is not safe for concurrent writers, so every write to the index (an ingest
job, a document deletion) holds one writer lock, and jobs run in submission order on a
single thread.  Up to ``queue_limit`` jobs wait behind the running one; a further job is
refused (``JobQueueFullError``, HTTP 429) rather than queued without bound.  Finished jobs
are kept in memory (the newest ``keep``) so their reports stay readable.

With several API workers on one index (a Chroma server, ``rag serve --workers N``): job
records also go to a :class:`~rag.api.jobs.store.JobStore` in the index folder, so any
worker answers ``GET /v1/ingest/{job}``; and a job waits (``queued``, phase ``waiting``)
for the index's cross-process writer lock (``lock``) while another worker writes, instead
of failing after ``RAG_LOCK_WAIT``.  The queue limit counts this worker's jobs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.adapters.faults import translate
from rag.api.jobs.records import (
    JobChunks,
    JobError,
    JobFiles,
    JobState,
    JobStatus,
    PhaseProgress,
    SkippedFile,
)
from rag.errors import (
    IndexBusyError,
    IndexLockedError,
    JobNotFoundError,
    JobQueueFullError,
    RagError,
)
from rag.indexing.ingest import IngestReport, Progress
from rag.models import now

if TYPE_CHECKING:
    from rag.api.jobs.store import JobStore

log = logging.getLogger(__name__)

IngestFn = Callable[[Progress, list[Path]], IngestReport]
IndexState = Callable[[], tuple[str, int]]  # (index version, chunks listed)
# The index's cross-process writer lock, waiting at most the given seconds (IndexLockedError).
WriterLock = Callable[[float], AbstractContextManager[object]]
CLAIM_STEP = 1.0  # seconds per attempt at the writer lock while a job waits for it
SAVE_EVERY = 0.5  # seconds between a running job's progress records in the shared job table
MAX_WARNINGS = 200
MAX_SKIPPED = 1000


class JobCancelledError(Exception):
    """Raised inside a running ingest (through its progress reports) to stop it."""


class _Job:
    def __init__(self, status: JobStatus, paths: list[Path]) -> None:
        self.status = status
        self.paths = paths
        self.noted = list(status.skipped)  # skipped before the ingest started
        self.cancel = threading.Event()
        self.dirty = False  # progress not yet written to the shared job table


class _JobProgress:
    """The Progress an ingest reports to: updates the job record; stops it when cancelled."""

    def __init__(
        self, job: _Job, lock: threading.Lock, changed: Callable[[_Job], None] | None = None
    ) -> None:
        self.job = job
        self.lock = lock
        self.changed = changed or (lambda job: None)  # e.g. mark it for the shared table

    def _check(self) -> None:
        if self.job.cancel.is_set():
            raise JobCancelledError

    def start(self, phase: str, total: int) -> None:
        self._check()
        with self.lock:
            self.job.status.phase = phase
            step = self.job.status.progress.get(phase)
            if step is None:
                self.job.status.progress[phase] = PhaseProgress(done=0, total=total)
            else:  # a later batch of files: more of the same work
                step.total += total
        self.changed(self.job)

    def advance(self, phase: str, n: int = 1) -> None:
        self._check()
        with self.lock:
            step = self.job.status.progress.setdefault(phase, PhaseProgress())
            step.done += n
        self.changed(self.job)

    def warn(self, message: str) -> None:
        with self.lock:
            if len(self.job.status.warnings) < MAX_WARNINGS:
                self.job.status.warnings.append(message)


class JobManager:
    def __init__(
        self,
        ingest: IngestFn,
        queue_limit: int,
        state: IndexState | None = None,
        after_write: Callable[[], object] | None = None,
        keep: int = 200,
        store: JobStore | None = None,
        lock: WriterLock | None = None,
    ) -> None:
        self._ingest = ingest
        self._state = state
        self._after_write = after_write
        self.store = store  # shared job records (several API workers)
        self._index_lock = lock  # the cross-process writer lock (None: this process only)
        self.queue_limit = queue_limit
        self.keep = keep
        self.writer = threading.Lock()  # held by every write to the index
        self._lock = threading.Lock()  # guards the job records
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- submitting and reading ---------------------------------------------------
    def queued(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status.state == "queued")

    def running(self) -> bool:
        with self._lock:
            return any(j.status.state == "running" for j in self._jobs.values())

    def ensure_room(self) -> None:
        """Raise unless a job submitted now would be accepted."""
        if self._closed:
            raise JobQueueFullError("the server is shutting down", "retry in a moment")
        if self.queued() >= self.queue_limit and self._busy():
            raise JobQueueFullError(
                f"{self.queue_limit} ingest job(s) already wait behind the running one",
                "retry when GET /v1/ingest/{job} reports them finished",
            )

    def _busy(self) -> bool:
        return self.writer.locked() or self.running() or self.queued() > 0

    def submit(
        self,
        paths: Sequence[Path],
        shown: Sequence[str],
        source: Literal["paths", "upload"],
        skipped: Sequence[tuple[str, str]] = (),
        warnings: Sequence[str] = (),
    ) -> JobStatus:
        """Queue an ingest of ``paths`` (``shown``: as the client named them); ``skipped``:
        files already known not to be read, with the reason; ``warnings``: said up front
        (e.g. an upload stored under another name)."""
        self.ensure_room()
        status = JobStatus(
            id=uuid.uuid4().hex,
            state="queued",
            source=source,
            paths=list(shown),
            created_at=now(),
            skipped=[SkippedFile(path=p, reason=r) for p, r in skipped],
            warnings=list(warnings),
        )
        job = _Job(status, list(paths))
        with self._lock:
            self._jobs[status.id] = job
            self._forget_old()
        self._save(job)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="rag-ingest")
            executor = self._executor
        executor.submit(self._run, job)
        return self.get(status.id)

    def get(self, job_id: str) -> JobStatus:
        """A job of this worker, or else (several workers) its record in the shared table."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.status.model_copy(deep=True)
        found = self.store.get(job_id) if self.store is not None else None
        if found is None:
            raise JobNotFoundError(
                f"no ingest job {job_id!r}",
                "job ids come from POST /v1/ingest; finished jobs are kept for a while",
            )
        return found

    def _save(self, job: _Job) -> None:
        """Write the job's record to the shared table; a failure there is logged, never
        fails the job."""
        if self.store is None:
            return
        with self._lock:
            job.dirty = False
            status = job.status.model_copy(deep=True)
        try:
            self.store.put(status)
        except Exception as exc:
            log.warning("could not record ingest job %s in the job table: %s", status.id, exc)

    def _mark(self, job: _Job) -> None:
        """The job's progress changed: recorded by its flusher within SAVE_EVERY seconds."""
        job.dirty = True

    def _flush(self, job: _Job, done: threading.Event) -> None:
        while not done.wait(SAVE_EVERY):
            if job.dirty:
                self._save(job)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.status.finished_at]
        for key in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[key]

    # -- writing ------------------------------------------------------------------
    @contextmanager
    def writing(self, timeout: float, across_processes: bool = False) -> Iterator[None]:
        """Hold the writer lock (waiting at most ``timeout`` seconds for a running job);
        ``across_processes``: also the index's lock that other processes (API workers)
        take to write."""
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.writer.acquire(timeout=max(0.0, timeout)):
            raise IndexBusyError(
                "an ingest job is writing to the index", "retry when it has finished"
            )
        try:
            with ExitStack() as held:
                if across_processes and self._index_lock is not None:
                    left = max(0.0, deadline - time.monotonic())
                    try:
                        held.enter_context(self._index_lock(left))
                    except IndexLockedError as exc:
                        raise IndexBusyError(exc.message, "retry when it has finished") from None
                yield
        finally:
            self.writer.release()

    def _claim(self, job: _Job, held: ExitStack) -> None:
        """Wait, queued, until no other process writes the index; then hold its lock."""
        if self._index_lock is None:
            return
        waiting = False
        while True:
            if job.cancel.is_set():
                raise JobCancelledError
            try:
                held.enter_context(self._index_lock(CLAIM_STEP))
                return
            except IndexLockedError as exc:
                if not waiting:
                    waiting = True
                    log.info("ingest job %s waits: %s", job.status.id, exc.message)
                    with self._lock:
                        job.status.phase = "waiting"
                self._save(job)  # also a sign of life for other workers

    def _run(self, job: _Job) -> None:
        status = job.status
        progress = _JobProgress(job, self._lock, self._mark)
        report: IngestReport | None = None
        error: JobError | None = None
        state: JobState = "succeeded"
        started = time.perf_counter()
        try:
            with self.writer, ExitStack() as held:
                self._claim(job, held)
                with self._lock:
                    if job.cancel.is_set():
                        raise JobCancelledError
                    status.state, status.started_at, status.phase = "running", now(), None
                self._save(job)
                started = time.perf_counter()
                if self.store is not None:  # progress for other workers, every SAVE_EVERY s
                    flushing = threading.Event()
                    flusher = threading.Thread(
                        target=self._flush, args=(job, flushing), daemon=True
                    )
                    flusher.start()
                    held.callback(flusher.join)
                    held.callback(flushing.set)
                report = self._ingest(progress, job.paths)
                self._warm()
        except JobCancelledError:
            state = "cancelled"
        except RagError as exc:
            state, error = "failed", self._error(job, exc)
        except Exception as exc:
            known = translate(exc)
            state = "failed"
            if known is not None:
                log.warning("ingest job %s failed: %s", status.id, known.message)
                error = self._error(job, known)
            else:
                log.exception("ingest job %s failed", status.id)
                error = JobError(
                    code="internal_error", message="the ingest failed", hint="see the server log"
                )
        if status.source == "upload":
            self._drop_refused(job, report, error)
        version, chunks = self._index_state()
        with self._lock:
            status.chunks.total = chunks
            if report is not None:
                _apply(status, report, job.noted)
            if error is not None:
                status.errors.append(error)
            status.state = state
            status.seconds = round(time.perf_counter() - started, 3)
            status.index_version = version
            status.finished_at = now()
        self._save(job)
        log.info("ingest job %s %s", status.id, state)

    @staticmethod
    def _error(job: _Job, exc: RagError) -> JobError:
        """The job's error, naming files as the client named them (never the server's own
        absolute paths)."""
        message, hint = exc.message, exc.hint
        for where, shown in sorted(
            zip(job.paths, job.status.paths, strict=False), key=lambda p: -len(str(p[0]))
        ):
            message = message.replace(str(where), shown)
            hint = hint.replace(str(where), shown)
        return JobError(code=exc.code, message=message, hint=hint)

    @staticmethod
    def _drop_refused(job: _Job, report: IngestReport | None, error: JobError | None) -> None:
        """Uploaded files the ingest did not take (binary, empty, unreadable) are deleted:
        an upload that is refused leaves nothing behind in the uploads folder."""
        skipped = {s.path for s in report.skipped} if report is not None else set()
        everything = error is not None and error.code == "empty_corpus"
        for where, shown in zip(job.paths, job.status.paths, strict=False):
            if everything or shown in skipped:
                try:
                    where.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("the refused upload %s was not deleted: %s", shown, exc)

    def _warm(self) -> None:
        """Run ``after_write`` (e.g. open a new index before readers do); never fails a job."""
        if self._after_write is None:
            return
        try:
            self._after_write()
        except Exception as exc:
            log.warning("after the ingest: %s", exc)

    def _index_state(self) -> tuple[str | None, int]:
        try:
            return self._state() if self._state else (None, 0)
        except Exception:
            return None, 0

    # -- shutting down --------------------------------------------------------------
    def close(self, wait: bool = True) -> None:
        """Cancel waiting jobs, stop the running one at its next progress report."""
        self._closed = True
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=False)


def _apply(status: JobStatus, report: IngestReport, noted: list[SkippedFile]) -> None:
    status.files = JobFiles(
        seen=report.files_seen,
        indexed=report.files_indexed,
        unchanged=report.files_unchanged,
        removed=report.files_removed,
    )
    status.chunks = JobChunks(
        written=report.chunks_written, deleted=report.chunks_deleted, total=report.chunks_total
    )
    seen = {s.path for s in noted}  # a link both checks found is listed once
    found = [
        SkippedFile(path=s.path, reason=s.reason) for s in report.skipped if s.path not in seen
    ]
    status.skipped = (noted + found)[:MAX_SKIPPED]
