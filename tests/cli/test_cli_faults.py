"""The CLI's one error boundary, in a subprocess: a damaged index and an unexpected error are
each one line and a hint; the traceback only with --debug or RAG_DEBUG=1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.test_cli import rag
from tests.conftest import PUTIN_2000, make_runtime
from tests.indexing.test_damage import zero_page


def test_a_damaged_index_is_one_line_naming_it(
    tmp_path: Path, embedder: Any, cli_env: dict[str, str]
) -> None:
    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive")
    runtime.ingest_service().ingest()
    gen = runtime.manifest.active()
    assert gen is not None
    runtime.stores(gen)[1].close()
    zero_page(tmp_path / "index" / gen.lexical, 135168)
    env = {
        **cli_env,
        "RAG_INDEX_DIR": str(tmp_path / "index"),
        "RAG_CORPUS_DIR": str(tmp_path / "corpus"),
    }

    done = rag("ask", PUTIN_2000, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: damaged: the keyword index") and gen.lexical in lines[0]
    assert lines[1].startswith("hint: run `rag ingest --rebuild`")

    status = rag("status", env=env)
    assert status.returncode == 1 and "state: damaged" in status.stdout, status.stdout
    assert "run `rag ingest --rebuild`" in status.stdout


def test_an_unexpected_error_is_one_line_and_a_hint(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    index = tmp_path / "index"
    (index / "write.lock").mkdir(parents=True)  # the lock file cannot be opened: a surprise
    env = {**cli_env, "RAG_INDEX_DIR": str(index)}

    done = rag("ingest", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()[-2:]
    assert lines[0].startswith("error: unexpected IsADirectoryError: "), done.stderr
    assert lines[1].startswith("hint: run again with --debug (or RAG_DEBUG=1)")

    for debug in (rag("--debug", "ingest", env=env), rag("ingest", env={**env, "RAG_DEBUG": "1"})):
        assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
        assert "error: unexpected IsADirectoryError" in debug.stderr
