"""The real `rag` command in a subprocess: ingest, ask, config, and friendly errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES

RAG = str(Path(sys.executable).parent / "rag")


def rag(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAG, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def ingested(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {**cli_env, "RAG_INDEX_DIR": str(tmp_path_factory.mktemp("cli-index"))}
    done = rag("ingest", str(CORPUS), env=env)
    assert done.returncode == 0, done.stderr
    assert "indexed 5 file(s)" in done.stderr
    return env


def test_ask_prints_answer_with_line_markers_and_quotes(ingested: dict[str, str]) -> None:
    done = rag("ask", PUTIN_2000, env=ingested)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    short, sentence = out.splitlines()[:2]  # the short answer, then the sentence it is read from
    assert "2000" in short and len(short) < len(sentence) / 2
    assert "2000" in sentence
    assert any(f"[{path}:L{line}]" in sentence for path, line in PUTIN_2000_LINES)
    assert "   14 | Putin’s last visit to North Korea was in July 2000." in out or (
        "    2 | Putin’s last visit to Pyongyang was in July 2000" in out
    )
    assert "\x1b[" not in out  # not a terminal, NO_COLOR: plain text


def test_ask_json(ingested: dict[str, str]) -> None:
    done = rag("ask", PUTIN_2000, "--json", "--backend", "extractive", env=ingested)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["backend"] == "extractive" and "2000" in answer["answer"]
    cited = {(c["path"], c["start_line"]) for c in answer["citations"]}
    assert cited & PUTIN_2000_LINES
    assert set(answer["timings"]) == {"retrieval_ms", "generation_ms", "total_ms"}


def test_ask_what_the_documents_do_not_say(ingested: dict[str, str]) -> None:
    done = rag("ask", OFF_TOPIC, "--json", env=ingested)
    answer = json.loads(done.stdout)
    assert answer["abstained"] is True and answer["citations"] == []
    assert answer["answer"].startswith("The documents do not say")


def test_ingest_if_stale_skips_an_up_to_date_index(ingested: dict[str, str]) -> None:
    done = rag("ingest", "--if-stale", env=ingested)
    assert done.returncode == 0 and "index is up to date" in done.stderr


def test_missing_path_is_one_friendly_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = rag("ingest", str(tmp_path / "nope"), env=cli_env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: no such file or folder: {tmp_path / 'nope'}")
    assert "hint:" in done.stderr and "Traceback" not in done.stderr


def test_empty_folder(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = rag("ingest", str(tmp_path), env=cli_env)
    assert done.returncode == 2 and "error: no files found" in done.stderr
    assert "Traceback" not in done.stderr


def test_ask_without_an_index(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "RAG_INDEX_DIR": str(tmp_path / "none")}
    done = rag("ask", "anything?", env=env)
    assert done.returncode == 2 and "error: no index found" in done.stderr
    assert "hint: build it with `rag ingest`" in done.stderr


def test_bad_settings_are_reported_by_name(cli_env: dict[str, str]) -> None:
    done = rag("config", env={**cli_env, "RAG_TOP_K": "lots"})
    assert done.returncode == 2 and "top_k" in done.stderr and "Traceback" not in done.stderr
    done = rag("ask", "q?", "--backend", "gpt", env=cli_env)
    assert done.returncode == 2 and "llm_backend" in done.stderr


def test_config_shows_values_and_their_sources(cli_env: dict[str, str], tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text('chunk_size = 100\nollama_model = "qwen2.5:7b"\n')
    env = {**cli_env, "RAG_CONFIG": str(toml), "RAG_TOP_K": "7"}
    done = rag("config", "--json", "--backend", "llamacpp", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows["top_k"] == {"value": "7", "source": "env RAG_TOP_K"}
    assert rows["chunk_size"] == {"value": "100", "source": str(toml)}
    assert rows["ollama_model"]["source"] == str(toml)
    assert rows["llm_backend"] == {"value": "llamacpp", "source": "command line"}
    assert rows["max_tokens"]["source"] == "default"
    plain = rag("config", env=env).stdout
    assert "top_k" in plain and "Passages retrieved per question." in plain


def test_broken_toml_is_reported(cli_env: dict[str, str], tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text("chunk_size = = 3\n")
    done = rag("config", env={**cli_env, "RAG_CONFIG": str(toml)})
    assert done.returncode == 2 and "is not valid TOML" in done.stderr


def test_links_out_of_the_corpus_are_skipped_with_a_warning(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """One symlink policy, named directly or found in a folder (issue 19, item 5)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("003_04a47c1ca7d95a89.txt", "004_5e50463e41e8a191.txt"):
        (corpus / name).write_bytes((CORPUS / name).read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:The vault combination is 7-4-1-9:/root\n")
    (corpus / "passwd_link.txt").symlink_to(outside / "passwd")
    (corpus / "elsewhere").symlink_to(outside, target_is_directory=True)
    env = {**cli_env, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(tmp_path / "index")}

    named = rag("ingest", str(corpus / "passwd_link.txt"), env=env)
    assert named.returncode != 0 and "Traceback" not in named.stderr
    assert "passwd_link.txt" in named.stderr and "link" in named.stderr

    folder = rag("ingest", env=env)
    assert folder.returncode == 0, folder.stderr
    assert "skipped passwd_link.txt: a link to a place outside the corpus folder" in folder.stderr
    assert "skipped elsewhere/: a link" in folder.stderr and "2 skipped" in folder.stderr

    status = rag("status", env=env)
    assert "passwd_link.txt: a link to a place outside the corpus folder" in status.stdout

    asked = rag("ask", "What is the vault combination?", "--json", env=env)
    answer = json.loads(asked.stdout)
    assert "7-4-1-9" not in asked.stdout and all(
        "passwd" not in s["path"] for s in answer["sources"]
    )


def test_one_huge_file_is_cut_to_its_chunk_limit(cli_env: dict[str, str], tmp_path: Path) -> None:
    """One single-line file cannot swamp the index (issue 19, item 7)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "004_5e50463e41e8a191.txt").write_bytes(
        (CORPUS / "004_5e50463e41e8a191.txt").read_bytes()
    )
    words = [f"filler{i % 97} word{i % 89}" for i in range(6000)]
    (corpus / "huge.txt").write_text(" ".join(words) + "\n")  # one line, ~100 KB
    env = {**cli_env, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(tmp_path / "index"),
           "RAG_MAX_FILE_CHUNKS": "4"}  # fmt: skip
    done = rag("ingest", env=env)
    assert done.returncode == 0, done.stderr
    assert "huge.txt: only its first 4 chunks (lines 1-1) are indexed" in done.stderr
    assert "RAG_MAX_FILE_CHUNKS (4)" in done.stderr
    status = json.loads(rag("status", "--json", env=env).stdout)
    assert status["in_sync"] and status["chunks_listed"] < 40, status  # uncut: over 250
    asked = json.loads(rag("ask", PUTIN_2000, "--json", env=env).stdout)
    assert not asked["abstained"] and "2000" in asked["answer"]


def test_model_cache_is_per_user_not_in_the_current_folder(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Run from another folder, rag keeps its int8 model cache in one per-user place."""
    env = {k: v for k, v in cli_env.items() if k != "RAG_MODELS_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = subprocess.run(
        [RAG, "config", "--json"], env=env, cwd=elsewhere, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert str(tmp_path / "cache" / "rag" / "models") in shown.stdout
    assert not (elsewhere / "data").exists()


def test_training_the_verifier_without_the_cross_readers_checkpoint_says_what_to_run(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The verifier starts from the cross reader's training checkpoint; without one the
    command names it and the command that makes it (no traceback, nothing written)."""
    env = {**cli_env, "RAG_MODELS_DIR": str(tmp_path / "models")}
    out = tmp_path / "out"
    data = Path(__file__).parents[2].parent / "shared" / "benchmarks" / "squad-train"
    if not (data / "golden.jsonl").is_file():
        pytest.skip("../shared/benchmarks/squad-train is not here")
    done = rag("train", "--part", "verifier", "--data", str(data), "--out", str(out), env=env)
    assert done.returncode != 0
    assert "checkpoint.pt" in done.stderr and "rag train --part cross" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "verifier").exists()
    done = rag("train", "--part", "bogus", env=env)
    assert done.returncode != 0 and "choose all, first, cross or verifier" in done.stderr
