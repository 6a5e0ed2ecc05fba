"""A full disk, for real: the index on a small tmpfs mounted by the test, filled with a filler
file.  The ingest fails naming the disk, a reader opened before keeps answering, the writer
lock still works, and once space is freed the next ingest finishes the job."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.adapters.embedder import Embedder
from rag.adapters.faults import disk_full_error, is_disk_full, translate
from rag.errors import DiskFullError
from rag.indexing.status import index_status
from tests.conftest import CORPUS, PUTIN_2000, PUTIN_2000_LINES, make_runtime


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (root only: mounting needs it)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path, leave_kib: int) -> Path:
    """A filler file taking all but ``leave_kib`` KiB of the disk."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    size = st.f_bavail * st.f_frsize - leave_kib * 1024
    with open(filler, "wb") as out:
        block = b"\0" * (1 << 16)
        while size > 0:
            out.write(block[: min(size, len(block))])
            size -= len(block)
    return filler


def test_a_full_disk_is_named_readers_keep_answering_and_ingest_resumes(
    small_disk: Path, embedder: Embedder
) -> None:
    corpus = small_disk / "corpus"
    shutil.copytree(CORPUS, corpus)
    runtime = make_runtime(small_disk, embedder, corpus, llm_backend="extractive")
    runtime.ingest_service().ingest()
    reader = runtime.answer_service  # opened before the disk fills, like a running server
    lines = [f"Line {i}: the harbor by the tower was rebuilt in {1500 + i}." for i in range(1500)]
    (corpus / "harbor.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # 16 KiB: the manifest's write fails first.  With 150 KiB left Chroma's own upsert met the
    # full disk, and once in three runs it never returned (a hang inside chromadb's Rust
    # bindings, not an error we could name).
    filler = _fill(small_disk, leave_kib=16)

    writer = make_runtime(small_disk, embedder, corpus, llm_backend="extractive")
    with pytest.raises(DiskFullError) as raised:
        writer.ingest_service().ingest()
    assert raised.value.message == (
        f"no space left on tmpfs ({small_disk}) for the index at {small_disk / 'index'}"
    )
    assert "free space or move RAG_INDEX_DIR" in raised.value.hint

    answer = reader.ask(PUTIN_2000)  # the last good generation keeps answering
    assert {(c.path, c.start_line) for c in answer.citations} & PUTIN_2000_LINES
    with writer.writer_lock("rag serve"):  # the lock holds without room to describe itself
        pass

    filler.unlink()
    again = make_runtime(small_disk, embedder, corpus, llm_backend="extractive")
    report = again.ingest_service().ingest()
    assert report.chunks_total > 43 and report.files_indexed >= 1, report
    assert index_status(again.ingest_service()).in_sync


def test_disk_full_is_recognised_in_every_shape(tmp_path: Path) -> None:
    import errno
    import sqlite3

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    wrapped = RuntimeError("Error in compaction: Failed to apply logs to the metadata segment")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(wrapped)
    assert not is_disk_full(RuntimeError("a bug"), tmp_path)  # room left: not the disk
    known = translate(wrapped, tmp_path)
    assert isinstance(known, DiskFullError) and str(tmp_path) in known.message
    assert disk_full_error(tmp_path).message.startswith("no space left on ")


def test_chroma_is_not_asked_to_write_without_room(small_disk: Path, embedder: Embedder) -> None:
    """Chroma's Rust bindings can hang when the disk fills inside an upsert: a batch is
    refused before Chroma sees it when the disk lacks room for it, and nothing is written."""
    import numpy as np

    from rag.models import Chunk

    corpus = small_disk / "corpus"
    shutil.copytree(CORPUS, corpus)
    runtime = make_runtime(small_disk, embedder, corpus, llm_backend="extractive")
    runtime.ingest_service().ingest()
    store = runtime.store
    before = store.collection.count()
    text = "The harbor by the tower was rebuilt in 1520."
    chunk = Chunk(
        id="harbor-1",
        path="harbor.txt",
        start_line=1,
        end_line=1,
        start_char=0,
        end_char=len(text),
        text=text,
    )
    vector = np.ones((1, embedder.dimension), dtype=np.float32) / np.sqrt(embedder.dimension)
    filler = _fill(small_disk, leave_kib=200)  # below the 1 MiB a batch needs (store.MIN_ROOM)
    with pytest.raises(DiskFullError) as raised:
        store.upsert([chunk], vector)
    assert raised.value.message.startswith("no space left on tmpfs")
    assert store.collection.count() == before
    filler.unlink()
    store.upsert([chunk], vector)  # with room again, the same batch is written
    assert store.collection.count() == before + 1
