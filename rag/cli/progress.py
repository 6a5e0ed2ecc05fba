"""A rich progress bar for ingest (files read, chunks embedded) on stderr."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LABELS = {"read": "files ", "embed": "chunks"}


class BarProgress:
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._live = False

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live:
            self._bar.__exit__(exc_type, exc, tb)

    def start(self, phase: str, total: int) -> None:
        if not self._live:  # show nothing until there is work to show
            self._bar.__enter__()
            self._live = True
        if phase in self._tasks:  # a later batch of files: more of the same work
            task = self._tasks[phase]
            self._bar.update(task, total=(self._bar.tasks[task].total or 0) + total)
            return
        self._tasks[phase] = self._bar.add_task(LABELS.get(phase, phase), total=total)

    def advance(self, phase: str, n: int = 1) -> None:
        if phase in self._tasks:
            self._bar.advance(self._tasks[phase], n)

    def warn(self, message: str) -> None:
        self.console.print(Text.assemble(("warning: ", "yellow"), message), highlight=False)


class LineProgress:
    """No bars: only warnings, one line each (for `rag ingest --watch`)."""

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
