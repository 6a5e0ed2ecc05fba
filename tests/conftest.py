"""Shared fixtures: the real embedding model, real Chroma indexes in temporary folders."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rag.adapters.embedder import Embedder
    from rag.runtime import Runtime

# A parent that started pytest in the background (``cmd &`` in a script) leaves SIGINT ignored,
# and an ignored signal is inherited by every child: the CLI tests' Ctrl-C would do nothing.
# A handler, unlike SIG_IGN, is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "corpus"
PUTIN_2000 = "When did Putin last visit North Korea before this trip?"
# Lines that say when Putin last visited (before June 2024).
PUTIN_2000_LINES = {("003_04a47c1ca7d95a89.txt", 2), ("004_5e50463e41e8a191.txt", 14)}
OFF_TOPIC = "What is the boiling point of water at sea level in Celsius?"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's own RAG_* settings or rag.toml."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "no-rag.toml"))


def sed_lines(path: Path) -> list[str]:
    """The file's lines as `sed -n 'Np'` prints them (without the line ending)."""
    text = path.read_bytes().decode("utf-8-sig")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The embedding model with the default backend (what Settings() asks for)."""
    from rag.adapters.embedder import Embedder
    from rag.config import Settings

    backend = Settings.model_fields["embedding_backend"].default
    return Embedder("all-MiniLM-L6-v2", backend=backend, cache_dir=REPO / "data" / "models")


@pytest.fixture(scope="session")
def torch_embedder() -> Embedder:
    """The fp32 torch backend (the other choice)."""
    from rag.adapters.embedder import Embedder

    return Embedder("all-MiniLM-L6-v2", backend="torch")


def make_runtime(
    tmp: Path, embedder: Embedder, corpus: Path | None = None, **overrides: Any
) -> Runtime:
    """A Runtime over ``corpus`` (a copy of data/corpus by default) with its own index."""
    from rag.config import Settings
    from rag.runtime import Runtime

    if corpus is None:
        corpus = tmp / "corpus"
        if not corpus.exists():
            shutil.copytree(CORPUS, corpus)
    overrides.setdefault("models_dir", REPO / "data" / "models")
    settings = Settings(corpus_dir=corpus, index_dir=tmp / "index", **overrides)
    return Runtime(settings, embedder=embedder)  # share the loaded model


@pytest.fixture(scope="session")
def corpus_runtime(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Runtime:
    """data/corpus ingested once into a temporary index (extractive backend)."""
    runtime = make_runtime(tmp_path_factory.mktemp("corpus"), embedder, llm_backend="extractive")
    runtime.ingest_service().ingest()
    return runtime


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for `rag` subprocesses: an isolated config and index."""
    home = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_CONFIG=str(home / "rag.toml"),
        RAG_INDEX_DIR=str(home / "index"),
        RAG_CORPUS_DIR=str(CORPUS),
        RAG_LLM_BACKEND="extractive",
        NO_COLOR="1",
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",  # nothing listens there: Ollama is "down"
        RAG_MODELS_DIR=str(REPO / "data" / "models"),  # the tests' shared int8 model cache
    )
    yield env
