"""`rag eval`: deterministic runs, the regression gate, outputs, partial runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import InputError
from rag.evaluation.gate import compare, load_baseline
from rag.evaluation.golden import load_golden
from rag.evaluation.report import write_outputs
from rag.evaluation.runner import EvalConfig, run_eval, summarize
from tests.conftest import CORPUS, REPO

RAG = str(Path(sys.executable).parent / "rag")
GOLDEN = REPO / "eval" / "golden.jsonl"
BASELINE = REPO / "eval" / "baseline.json"


def _settings(tmp: Path) -> Settings:
    return Settings(index_dir=tmp / "unused", models_dir=REPO / "data" / "models")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Path:
    """The CI gate: the sample corpus, extractive backend, against eval/baseline.json."""
    out = tmp_path_factory.mktemp("eval-out")
    done = subprocess.run(
        [
            RAG,
            "eval",
            "--golden",
            str(GOLDEN),
            "--corpus",
            str(CORPUS),
            "--baseline",
            str(BASELINE),
            "--out",
            str(out),
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "regression gate passed" in done.stderr
    return out


def test_gate_passes_on_the_sample_corpus_and_writes_a_report(cli_run: Path) -> None:
    summary = json.loads((cli_run / "summary.json").read_text())
    meta = summary["meta"]
    assert meta["backend"] == "extractive" and meta["exact_search"] is True
    assert len(meta["golden_sha256"]) == len(meta["corpus_sha256"]) == 64
    assert meta["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"
    rows = [json.loads(line) for line in (cli_run / "results.jsonl").read_text().splitlines()]
    assert len(rows) == summary["questions"] == len(load_golden(GOLDEN))
    assert {"question", "answer", "citations", "hit_rank", "confidence"} <= set(rows[0])
    html = (cli_run / "report.html").read_text()
    assert html.count("<svg") == 2 and "Regression gate passed" in html
    assert "| recall@5 |" in (cli_run / "report.md").read_text()


def test_two_runs_give_identical_summaries(cli_run: Path, tmp_path: Path) -> None:
    """A second, in-process run over a freshly built index scores exactly the same."""
    first = json.loads((cli_run / "summary.json").read_text())
    run = run_eval(_settings(tmp_path), EvalConfig(GOLDEN, CORPUS, "extractive", 5))
    again = summarize(run.rows)
    assert again["metrics"] == first["metrics"]
    rows = [json.loads(line) for line in (cli_run / "results.jsonl").read_text().splitlines()]
    strip = lambda r: {k: v for k, v in r.items() if k != "latency_ms"}  # noqa: E731
    assert [strip(r) for r in run.rows] == [strip(r) for r in rows]


def test_ctrl_c_keeps_what_is_done(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    run = run_eval(_settings(tmp_path), EvalConfig(GOLDEN, CORPUS, "extractive", 5), interrupt)
    assert run.interrupted and len(run.rows) == 3
    out = tmp_path / "out"
    write_outputs(out, {**run.meta, "interrupted": True}, summarize(run.rows), run.rows, None, None)
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert "Interrupted: partial results" in (out / "report.md").read_text()


def _row(qid: str, correct: bool) -> dict:  # type: ignore[type-arg]
    return {"id": qid, "correct": correct}


def test_gate_flags_drops_beyond_tolerance_and_flipped_questions() -> None:
    baseline = {
        "summary": {"recall@5": 0.90, "contains": 0.80, "wrongly_abstained": 0.05, "mrr": None},
        "tolerance": {"default": 0.01, "contains": 0.05},
        "questions": {"a": {"correct": True}, "b": {"correct": False}, "c": {"correct": True}},
    }
    now = {"recall@5": 0.885, "contains": 0.76, "wrongly_abstained": 0.07, "mrr": 0.5}
    result = compare(baseline, now, [_row("a", False), _row("b", True), _row("c", True)])
    assert [r.metric for r in result.regressions] == ["recall@5", "wrongly_abstained"]
    assert result.flipped == ["a"] and not result.passed
    ok = compare(baseline, {"recall@5": 0.895, "contains": 0.9, "wrongly_abstained": 0.0}, [])
    assert ok.passed


def test_bad_golden_and_baseline_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"id": "x", "question": "q", "answers": [], "answerable": false}\n{oops\n')
    with pytest.raises(InputError, match=r"golden.jsonl:2: not a valid golden row"):
        load_golden(bad)
    with pytest.raises(InputError, match="baseline not found"):
        load_baseline(tmp_path / "nope.json")
