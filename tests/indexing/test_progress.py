"""Ingest's progress reporters: a phase started again (the next batch of files) grows."""

from __future__ import annotations

import threading

from rag.api.jobs.manager import _Job, _JobProgress
from rag.api.jobs.records import JobStatus
from rag.cli.progress import BarProgress


def test_the_cli_bar_grows_one_task_per_phase() -> None:
    with BarProgress() as bar:
        bar.start("embed", 3)
        bar.advance("embed", 2)
        bar.start("embed", 4)
        (task,) = bar._bar.tasks
        assert (task.completed, task.total) == (2, 7)


def test_a_job_record_grows_its_phase_and_keeps_what_is_done() -> None:
    status = JobStatus(id="j1", state="running", source="paths", paths=[], created_at="now")
    job = _Job(status, [])
    progress = _JobProgress(job, threading.Lock())
    progress.start("embed", 3)
    progress.advance("embed", 2)
    progress.start("embed", 4)
    assert (status.progress["embed"].done, status.progress["embed"].total) == (2, 7)
