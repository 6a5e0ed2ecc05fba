"""Pieces every `rag` command shares: the common flags, settings with overrides, logging setup."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.config import BACKENDS, Settings, load_settings

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help=f"LLM backend: {', '.join(BACKENDS)} (default: auto)."),
]
IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder (default: data/index).")
]
CorpusOpt = Annotated[
    Path | None, typer.Option("--corpus", help="Corpus folder (default: data/corpus).")
]


def cli_settings(**overrides: Any) -> tuple[Settings, dict[str, Any]]:
    """The settings with the flags given on the command line (None means not given)."""
    return load_settings(**overrides), overrides


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
