"""`rag train`: fit the readers on SQuAD training articles (see rag/answering/reader): the
first reader (numpy networks over the embedder's outputs) and the cross reader (MiniLM
fine-tuned; resumable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rag.config import load_settings

DEFAULT_DATA = Path("../shared/benchmarks/squad-train")


def train_command(
    data: Annotated[
        Path, typer.Option(help="Training set: golden.jsonl and corpus/ (never the test set).")
    ] = DEFAULT_DATA,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the model (default: the shipped one).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (first reader).")] = 0,
    part: Annotated[
        str,
        typer.Option(
            help="all | first (the numpy reader, ~20 min) | cross (the fine-tuned cross "
            "reader, ~1 h on 2 cores; resumes from its last checkpoint) | verifier (from the "
            "cross reader's checkpoint, ~40 min; re-calibrates the answerability)"
        ),
    ] = "all",
    device: Annotated[
        str, typer.Option(help="Where the cross reader trains: cpu, or cuda where a GPU is.")
    ] = "cpu",
) -> None:
    """Train the readers (sentence scores, cited lines, short answers, answerability) and
    write their models."""
    from rag.answering.reader.model import MODEL_DIR
    from rag.errors import InputError
    from rag.evaluation.reader_training import train

    if not (data / "golden.jsonl").is_file() or not (data / "corpus").is_dir():
        raise InputError(
            f"{data} holds no golden.jsonl and corpus/ folder",
            "pass --data with a folder like ../shared/benchmarks/squad-train",
        )
    if (data / "golden.jsonl").resolve() == Path(
        "../shared/benchmarks/squad/golden.jsonl"
    ).resolve():
        raise InputError(
            f"{data} is the test benchmark", "train on ../shared/benchmarks/squad-train"
        )
    if part not in ("all", "first", "cross", "verifier"):
        raise InputError(f"unknown --part {part!r}", "choose all, first, cross or verifier")
    settings = load_settings()

    def echo(line: str) -> None:
        typer.echo(line, err=True)

    if part in ("all", "first"):
        card = train(data, settings, out or MODEL_DIR, seed, echo)
        typer.echo(json.dumps(card["cross_validated"], indent=2))
    if part in ("all", "cross"):
        from rag.answering.reader.cross import CROSS_DIR
        from rag.evaluation.cross_run import train_cross

        target = (out / CROSS_DIR.name) if out else CROSS_DIR
        target.parent.mkdir(parents=True, exist_ok=True)
        work = settings.models_dir / "cross-train"
        echo(f"cross reader: checkpoints in {work} (an interrupted run resumes from there)")
        result = train_cross(data, target, work, settings, device, echo)
        typer.echo(json.dumps(result, indent=2))
    if part in ("all", "verifier"):
        import shutil

        from rag.answering.reader.cross import CROSS_DIR
        from rag.answering.reader.verifier import VERIFIER_DIR
        from rag.evaluation.verifier_run import train_verifier

        start = settings.models_dir / "cross-train" / "checkpoint.pt"
        if not start.is_file():
            raise InputError(
                f"the verifier starts from the cross reader's training checkpoint: {start} "
                "is missing",
                "run `rag train --part cross` first (it resumes or re-trains the cross reader)",
            )
        cross = (out / CROSS_DIR.name) if out else CROSS_DIR
        if not cross.is_dir():  # --out without a cross reader there: calibrate a copy
            cross.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(CROSS_DIR, cross)
        target = (out / VERIFIER_DIR.name) if out else VERIFIER_DIR
        work = settings.models_dir / "verifier-train"
        result = train_verifier(data, target, cross, work, start, settings, device, echo)
        typer.echo(json.dumps(result, indent=2))
