"""`rag train`: fit the reader model on SQuAD training articles (see rag/answering/reader)."""

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
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train the reader (sentence scores, cited lines, answerability) and write its model."""
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
    card = train(data, load_settings(), out or MODEL_DIR, seed, lambda s: typer.echo(s, err=True))
    typer.echo(json.dumps(card["cross_validated"], indent=2))
