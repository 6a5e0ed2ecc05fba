"""`rag feedback list` and `rag feedback export`: marked answers, and the golden rows they make."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.cli.options import IndexOpt, cli_settings
from rag.cli.render import sanitize

if TYPE_CHECKING:
    from rag.feedback.marking import FeedbackService

DEFAULT_OUT = Path("eval/feedback.jsonl")
QUESTION_CHARS = 70


def _service(index: Path | None) -> FeedbackService:
    from rag.feedback.marking import FeedbackService

    settings, _ = cli_settings(index_dir=index)
    return FeedbackService(settings)


def _short(text: str, width: int) -> str:
    flat = " ".join(sanitize(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def feedback_list(
    index: IndexOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest records shown.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="The records as JSON.")] = False,
) -> None:
    """The marked answers, newest first: each one's state (ready, needs lines, stale), and
    the golden row a ready one becomes."""
    from rag.feedback.export import golden_row

    service = _service(index)
    listing = service.listing(limit)
    service.close()
    if as_json:
        typer.echo(listing.model_dump_json(indent=2))
        return
    if not listing.count:
        typer.echo("no marked answers yet (mark them on the page, in `rag chat`, or over HTTP)")
        return
    for r in listing.feedback:
        typer.echo(f"#{r.id}  {r.state:<11}  {r.mark:<12}  {_short(r.asked, QUESTION_CHARS)}")
        row = golden_row(r)
        if row is not None:
            typer.echo(f"      golden row: {json.dumps(row, ensure_ascii=False)}")
        for problem in r.problems:
            typer.echo(f"      {sanitize(problem)}")
        if r.state == "stale":  # the lines as they were, to find them again
            for lines in (*r.lines, *r.citations):
                for n, text in enumerate(lines.text, start=lines.start_line):
                    typer.echo(f"      was {sanitize(lines.path)}:L{n}: {_short(text, 90)}")
    typer.echo(
        f"{listing.count} marked, {listing.ready} ready to export, {listing.stale} stale",
        err=True,
    )


def feedback_export(
    out: Annotated[
        Path, typer.Option("--out", help=f"Golden file to write (merged by id): {DEFAULT_OUT}.")
    ] = DEFAULT_OUT,
    index: IndexOpt = None,
) -> None:
    """Write the ready marks as golden rows (eval/golden.jsonl's schema) into FILE; stale
    ones and wrong answers without lines are named, not written.  Then `rag eval --golden
    eval/golden.jsonl --golden FILE` asks them too."""
    from rag.feedback.export import export

    service = _service(index)
    records = service.records()
    service.close()
    done = export(records, out)
    said = done.lines(out)
    typer.echo(said[0])
    for line in said[1:]:
        typer.echo(sanitize(line), err=True)
