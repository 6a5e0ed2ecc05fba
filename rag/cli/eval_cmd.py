"""`rag eval`: the golden-question evaluation with a regression gate."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from rag.config import load_settings

DEFAULT_GOLDEN = Path("eval/golden.jsonl")
DEFAULT_BASELINE = Path("eval/baseline.json")


def eval_command(
    golden: Annotated[
        list[Path] | None,
        typer.Option(
            help="Golden questions (JSON lines; repeatable: the files are asked as one set, "
            f"e.g. --golden {DEFAULT_GOLDEN} --golden eval/feedback.jsonl). "
            f"Default: {DEFAULT_GOLDEN}."
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Build a fresh index of this folder first (default: use the index)."),
    ] = None,
    backend: Annotated[str, typer.Option(help="LLM backend to evaluate.")] = "extractive",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    baseline: Annotated[
        Path | None, typer.Option(help="Fail when a metric drops below this baseline.")
    ] = None,
    update_baseline: Annotated[
        bool, typer.Option("--update-baseline", help="Write this run as the baseline.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default eval/runs/TIME).")
    ] = None,
    index: Annotated[Path | None, typer.Option("--index", help="Index folder.")] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave this corpus file out of the index (repeatable; needs --corpus): its "
            "questions count as unanswerable, measuring off-corpus abstention."
        ),
    ] = None,
    drop_evidence: Annotated[
        bool,
        typer.Option(
            "--drop-evidence",
            help="Ask each answerable question as if the passage it was written from (its "
            "`context` lines, else its evidence) were not indexed, and count it unanswerable: "
            "abstention when the topic is there and the answer is not.",
        ),
    ] = False,
) -> None:
    """Run the golden questions, score retrieval, citations, answers and abstention."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from rag.evaluation.gate import baseline_payload, compare, dump_baseline, load_baseline
    from rag.evaluation.report import write_outputs
    from rag.evaluation.runner import EvalConfig, run_eval, summarize

    settings = load_settings(index_dir=index)
    if drop and corpus is None:
        from rag.errors import InputError

        raise InputError("--drop needs --corpus", "add --corpus FOLDER (the index is rebuilt)")
    config = EvalConfig(
        golden=tuple(golden or [DEFAULT_GOLDEN]),
        corpus=corpus,
        backend=backend,
        top_k=top_k,
        drop=tuple(drop or ()),
        drop_evidence=drop_evidence,
    )
    before = load_baseline(baseline) if baseline and not update_baseline else None
    columns = ("questions", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("eval", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = run_eval(settings, config, progress)
    summary = summarize(run.rows)
    meta = {**run.meta, "interrupted": run.interrupted}
    threshold = run.meta.get("abstain_below")
    gate = compare(before, summary["metrics"], run.rows, threshold) if before else None
    folder = out or Path("eval/runs") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_outputs(folder, meta, summary, run.rows, before, gate)
    typer.echo(json.dumps(summary["metrics"], indent=2))
    typer.echo(f"report: {folder / 'report.html'}", err=True)
    if update_baseline and not run.interrupted:
        target = baseline or DEFAULT_BASELINE
        target.write_text(
            dump_baseline(baseline_payload(meta, summary, run.rows)),
            encoding="utf-8",
        )
        typer.echo(f"baseline written: {target}", err=True)
    if run.interrupted:
        typer.echo(f"interrupted after {len(run.rows)} questions; partial results kept", err=True)
        raise typer.Exit(130)
    if gate:
        for line in gate.lines():
            typer.echo(line, err=True)
        if not gate.passed:
            raise typer.Exit(1)
    sys.stdout.flush()
