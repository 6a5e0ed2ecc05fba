"""`rag ingest --watch` and `rag status`, as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

RAG = str(Path(sys.executable).parent / "rag")


def _rows(db: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _files(index: Path) -> dict[str, str]:
    rows = _rows(
        index / "manifest.sqlite",
        "SELECT f.path, f.status FROM files f JOIN generations g ON g.id = f.generation "
        "WHERE g.state = 'active'",
    )
    return {str(p): str(s) for p, s in rows}


def _texts(index: Path) -> str:
    return "\n".join(
        str(t)
        for lexical in index.glob("lexical-g*.sqlite")
        for (t,) in _rows(lexical, "SELECT text FROM chunks")
    )


def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")


def test_watch_follows_create_edit_rename_delete_and_blocks_other_writers(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The summit took place in Pyongyang in June 2024.\n")
    (corpus / "b.txt").write_text("The agreement covers mutual defence.\n")
    env = dict(
        cli_env, RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index), RAG_WATCH_DEBOUNCE_MS="200"
    )
    watcher = subprocess.Popen(
        [RAG, "ingest", "--watch"], env=env, stderr=subprocess.PIPE, text=True
    )
    rest: list[str] = []
    drain: threading.Thread | None = None
    try:
        assert watcher.stderr is not None
        lines = []
        for line in watcher.stderr:
            lines.append(line)
            if line.startswith("watching"):
                break
        # keep draining stderr: a full pipe would block the watcher
        drain = threading.Thread(target=lambda: rest.extend(watcher.stderr or []), daemon=True)
        drain.start()
        assert _files(index) == {"a.txt": "complete", "b.txt": "complete"}, lines

        (corpus / "new.txt").write_text("Zanzibar flamingos attended the banquet.\n")
        _until("new file indexed", lambda: _files(index).get("new.txt") == "complete")
        assert "Zanzibar" in _texts(index)

        (corpus / "new.txt").write_text("Okapis attended the banquet instead.\n")
        _until(
            "edit indexed",
            lambda: _files(index).get("new.txt") == "complete" and "Okapis" in _texts(index),
        )
        assert "Zanzibar" not in _texts(index)  # no old text left behind

        (corpus / "new.txt").rename(corpus / "moved.txt")
        _until("rename followed", lambda: set(_files(index)) == {"a.txt", "b.txt", "moved.txt"})

        (corpus / "moved.txt").unlink()
        (corpus / ".swap.tmp").write_text("an editor's hidden file")
        _until("delete followed", lambda: set(_files(index)) == {"a.txt", "b.txt"})
        _until("deleted text gone", lambda: "Okapis" not in _texts(index))

        # a second writer is refused within seconds, naming the watcher
        started = time.monotonic()
        other = subprocess.run(
            [RAG, "ingest"], env=env, capture_output=True, text=True, timeout=120
        )
        assert other.returncode == 2
        assert "being written by `rag ingest --watch`" in other.stderr
        assert f"pid {watcher.pid}" in other.stderr
        assert "Traceback" not in other.stderr
        assert time.monotonic() - started < 30  # model load included; the wait itself is 3 s

        busy = subprocess.run(
            [RAG, "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert json.loads(busy.stdout)["writer"].startswith("`rag ingest --watch`")
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
        if drain is not None:
            drain.join(10)
    err = "".join(rest)
    assert watcher.returncode == 0, err
    assert "stopped watching" in err

    done = subprocess.run([RAG, "status", "--json"], env=env, capture_output=True, text=True)
    st = json.loads(done.stdout)
    assert done.returncode == 0, st
    assert st["in_sync"] and st["documents"] == 2 and st["writer"] is None
    assert st["chunks_listed"] == st["chunks_vector"] == st["chunks_keyword"] == 2

    (corpus / "b.txt").write_text("The agreement was changed.\n")
    (corpus / "c.txt").write_text("A third document.\n")
    (corpus / "a.txt").unlink()
    stale = subprocess.run([RAG, "status"], env=env, capture_output=True, text=True)
    assert stale.returncode == 1
    assert "out of sync" in stale.stdout
    for reason in (
        "removed from the corpus: a.txt",
        "changed document b.txt",
        "new document c.txt",
    ):
        assert reason in stale.stdout, stale.stdout
