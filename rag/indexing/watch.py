"""Keep the index in step with folders while running (`rag ingest --watch`).

File-system events (create, edit, rename, delete) are debounced by watchfiles; each quiet
batch triggers an incremental ingest with pruning of the watched folders.  Unchanged files
cost a stat call (size and mtime), changed ones are re-chunked and only new chunks embedded,
so a sync after one edit takes about as long as embedding that edit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.errors import RagError
from rag.indexing.ingest import IngestReport, IngestService

log = logging.getLogger(__name__)


def _relevant(path: Path, roots: Sequence[Path]) -> bool:
    """Hidden files and folders (editors' swap files, .git) are not part of the corpus."""
    for root in roots:
        root = root.resolve()
        if path == root or path.is_relative_to(root):
            rel = path.relative_to(root).parts if path != root else ()
            return not any(part.startswith(".") for part in rel)
    return False


def watch(
    service: IngestService,
    roots: Sequence[Path],
    debounce_ms: int,
    on_sync: Callable[[IngestReport | None, str | None], None],
    stop: threading.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Sync once, then after every debounced batch of changes under ``roots``, until ``stop``.

    ``on_sync(report, error)`` is told about each sync; a failed sync (a file vanished while
    read, say) is reported and the watch goes on.  The caller holds the writer lock.
    """
    from watchfiles import watch as watch_changes

    def sync() -> None:
        try:
            on_sync(service.ingest(list(roots), prune=True), None)
        except RagError as exc:
            on_sync(None, f"{exc.message} ({exc.hint})" if exc.hint else exc.message)

    # The watcher is set up at the generator's first step, which yields (empty) after at
    # most ``rust_timeout``; syncing only then means no change slips in between.
    first = True
    for changes in watch_changes(
        *roots,
        debounce=debounce_ms,
        step=50,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,
        recursive=True,
        raise_interrupt=True,
        ignore_permission_denied=True,
    ):
        if first:
            first = False
            sync()
            if ready is not None:
                ready()
        elif any(_relevant(Path(path).resolve(), roots) for _, path in changes):
            sync()
