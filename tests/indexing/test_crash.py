"""Kill -9 at random moments of real `rag ingest` runs; after each, recovery restores the
invariants, and a final ingest finishes the job exactly as a clean build would."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO, make_runtime

pytestmark = pytest.mark.slow

KILLS = 20
SEED = 20261123


def _paragraph_files(target: Path) -> None:
    """The sample articles cut into smaller files (more files: more moments to die in)."""
    target.mkdir()
    for article in sorted(CORPUS.glob("*.txt")):
        lines = article.read_text(encoding="utf-8").splitlines()
        for part in range(0, len(lines), 12):
            name = f"{article.stem}_{part // 12:02d}.txt"
            (target / name).write_text("\n".join(lines[part : part + 12]) + "\n")


def _mutate(corpus: Path, rng: random.Random, step: int) -> None:
    """Edit, add, delete or rename a few files, so every ingest has work to do."""
    files = sorted(corpus.glob("*.txt"))
    for _ in range(rng.randint(2, 6)):
        op = rng.choice(["edit", "edit", "add", "delete", "rename"])
        victim = rng.choice(files)
        if not victim.exists():
            continue
        if op == "edit":
            lines = victim.read_text().splitlines()
            at = rng.randrange(len(lines) + 1)
            lines.insert(at, f"Edit {step}: the delegation met again on day {rng.randint(1, 30)}.")
            victim.write_text("\n".join(lines) + "\n")
        elif op == "add":
            donor = rng.choice(files)
            if donor.exists():
                (corpus / f"added_{step}_{rng.randint(0, 999)}.txt").write_text(
                    donor.read_text() + f"Added in step {step}.\n"
                )
        elif op == "delete" and len(files) > 5:
            victim.unlink()
        elif op == "rename":
            victim.rename(corpus / f"renamed_{step}_{victim.name}")


def _check(env: dict[str, str], index: Path, corpus: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "tests.crash_check", str(index), str(corpus)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _rag(env: dict[str, str]) -> list[str]:
    return [str(Path(sys.executable).parent / "rag"), "ingest", "--prune"]


def test_kill_minus_nine_at_random_points_keeps_the_index_consistent(
    tmp_path: Path,
    cli_env: dict[str, str],
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _paragraph_files(corpus)
    # Small embedding groups interleave embedding and writing, so kills land in writes too.
    env = dict(cli_env, RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index), RAG_INGEST_GROUP="8")
    rng = random.Random(SEED)

    # A first full ingest, to learn how long the writing part takes.
    first = subprocess.run(_rag(env), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    seconds = float(re.findall(r"\[([\d.]+) s\]", first.stderr)[-1])

    window = max(0.5, seconds)  # how long a run writes after taking the lock, learnt below
    kills, attempts, log = 0, 0, []
    while kills < KILLS and attempts < KILLS * 3:
        attempts += 1
        _mutate(corpus, rng, attempts)
        if rng.random() < 0.15:  # sometimes change the chunker: a new generation is built
            env["RAG_CHUNK_SIZE"] = rng.choice(["96", "128"])
        lock = index / "write.lock"
        if lock.exists():
            lock.write_text("")  # a killed holder's note stays behind; the next one rewrites it
        child = subprocess.Popen(
            _rag(env), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if lock.exists() and lock.stat().st_size > 0:  # the writer is in
                break
            time.sleep(0.02)
        locked_at = time.monotonic()
        time.sleep(rng.uniform(0, window))
        if child.poll() is not None:  # finished first: aim the next kills into shorter runs
            window = max(0.3, 0.8 * (time.monotonic() - locked_at))
        else:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        stderr = child.stderr.read() if child.stderr else ""
        assert child.returncode in (0, -signal.SIGKILL), stderr[-2000:]
        result = _check(env, index, corpus)
        log.append((attempts, child.returncode, result["notes"]))
        assert result["violations"] == [], (attempts, result, stderr[-1500:])
    assert kills >= KILLS, f"only {kills} kills landed in {attempts} runs: {log}"

    # A re-ingest finishes the job: the index equals a clean build of the same files.
    final = subprocess.run(_rag(env), env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    result = _check(env, index, corpus)
    assert result["violations"] == []
    (active,) = [g for g in result["generations"] if g["state"] == "active"]
    assert set(active["files"].values()) == {"complete"}
    assert set(active["files"]) == {p.name for p in corpus.glob("*.txt")}
    chunk_size = int(env.get("RAG_CHUNK_SIZE", "128"))
    clean = make_runtime(tmp_path / "clean", embedder, corpus=corpus, chunk_size=chunk_size)
    expected = {
        p.name: sorted(c.id for c in clean.chunker.chunk(p.name, p.read_text()))
        for p in sorted(corpus.glob("*.txt"))
    }
    assert active["ids"] == expected
    shutil.rmtree(tmp_path / "clean", ignore_errors=True)
