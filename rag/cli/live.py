"""The live view of an answer being written in `rag chat`: a spinner until the first verified
sentence, then the verified sentences (dim) as they arrive, erased once the whole answer prints."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from rag.answering.conversation import Rewrite
from rag.cli.render import sanitize


class Streaming:
    """Verified sentences as they arrive (dim), erased when the whole answer is printed;
    until the first one, a spinner says the model is writing."""

    def __init__(self, console: Console, verbose: bool) -> None:
        self.text = ""
        self.verbose = verbose
        self.live = Live(
            Spinner("dots", Text("searching…", style="dim")),
            console=console,
            transient=True,
            refresh_per_second=12,
        )

    def __enter__(self) -> Streaming:
        self.live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.stop()

    def token(self, piece: str) -> None:
        self.text += piece
        self.live.update(Text(sanitize(self.text), style="dim"))

    def progress(self, written: int) -> None:
        if not self.text and written == 1:
            label = "writing… (each sentence is shown once its citation is verified)"
            self.live.update(Spinner("dots", Text(label, style="dim")))

    def rewrite(self, rewrite: Rewrite) -> None:
        if self.verbose and rewrite.changed:
            self.live.console.print(rewrite_line(rewrite))


def rewrite_line(rewrite: Rewrite) -> Text:
    line = Text(f"↳ rewritten ({rewrite.method}): ", style="dim")
    line.append(sanitize(rewrite.query), style="italic")
    if rewrite.note:
        line.append(f"  [{sanitize(rewrite.note)}]", style="dim")
    return line
