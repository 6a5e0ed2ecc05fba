"""`rag eval`: deterministic runs, the regression gate, outputs, partial runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
FEEDBACK = REPO / "eval" / "feedback.jsonl"  # marked answers (`rag feedback export`), if any
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
            *(["--golden", str(FEEDBACK)] if FEEDBACK.exists() else []),
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
    marked = len(load_golden(FEEDBACK)) if FEEDBACK.exists() else 0
    assert len(rows) == summary["questions"] == len(load_golden(GOLDEN)) + marked
    assert {"question", "answer", "citations", "hit_rank", "confidence"} <= set(rows[0])
    html = (cli_run / "report.html").read_text()
    assert html.count("<svg") == 2 and "Regression gate passed" in html
    assert "| recall@5 |" in (cli_run / "report.md").read_text()


def test_two_runs_give_identical_summaries(cli_run: Path, tmp_path: Path) -> None:
    """A second, in-process run over a freshly built index scores exactly the same."""
    first = json.loads((cli_run / "summary.json").read_text())
    goldens = (GOLDEN, FEEDBACK) if FEEDBACK.exists() else (GOLDEN,)
    run = run_eval(_settings(tmp_path), EvalConfig(goldens, CORPUS, "extractive", 5))
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


def _row(qid: str, correct: bool) -> dict[str, Any]:
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


# -- rounding is not a regression; a change is ------------------------------------------
def _q(qid: str, answerable: bool, abstained: bool, confidence: float, rank: int | None = 1):  # type: ignore[no-untyped-def]
    """A row as `rag eval` writes it (the fields the metrics read)."""
    right = abstained != answerable
    cited = 0 if abstained or not answerable else 1
    return {
        "id": qid,
        "answerable": answerable,
        "abstained": abstained,
        "confidence": confidence,
        "hit_rank": rank if answerable else None,
        "exact_match": 0.0 if answerable else None,
        "f1": (0.5 if right else 0.0) if answerable else None,
        "contains": (1.0 if right else 0.0) if answerable else None,
        "citation": {
            "cited": cited,
            "correct": cited,
            "cited_lines": cited,
            "evidence_lines_cited": cited,
        },
        "correct": right,
    }


def _baseline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from rag.evaluation.gate import baseline_payload
    from rag.evaluation.metrics import summary_metrics

    meta = {"abstain_below": 0.65}
    return baseline_payload(meta, {"metrics": summary_metrics(rows)}, rows)


# 20 answerable (confident), 17 unanswerable: a 17-question subset where one flip is 0.059.
BASE = [_q(f"a{i}", True, False, 0.9) for i in range(20)] + [
    _q(f"u{i}", False, i < 6, 0.5 if i < 6 else 0.8) for i in range(17)
]
BASE[20] = _q("u0", False, True, 0.6495)  # abstained, a hair below the threshold


def _now(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from rag.evaluation.metrics import summary_metrics

    return summary_metrics(rows), rows


def test_a_question_that_rounds_across_the_threshold_is_not_a_regression() -> None:
    """pk-u16 on an AVX2 machine: 0.6495 (abstained) became 0.6552 (answered)."""
    baseline = _baseline(BASE)
    rows = [*BASE]
    rows[20] = _q("u0", False, False, 0.6552)
    metrics, rows = _now(rows)
    assert metrics["abstain_recall"] < baseline["summary"]["abstain_recall"] - 0.05
    result = compare(baseline, metrics, rows)
    assert result.passed, result.regressions
    assert result.borderline == ["u0"] and result.flipped == []


def test_a_real_change_at_the_threshold_still_fails() -> None:
    """Counter-tests: the same flip fails when the confidence moved by more than the margin,
    when it is not near the threshold, or when something else (a rank) changed too."""
    baseline = _baseline(BASE)
    for changed, threshold in (
        (_q("u0", False, False, 0.70), None),  # moved by 0.05: the scoring changed
        (_q("u0", False, False, 0.6552), 0.60),  # a small move, but far from this threshold
    ):
        rows = [*BASE]
        rows[20] = changed
        metrics, rows = _now(rows)
        result = compare(baseline, metrics, rows, threshold)
        assert not result.passed and result.flipped == ["u0"] and not result.borderline
        assert {r.metric for r in result.regressions} >= {"abstain_recall"}
    # a borderline flip does not hide a ranking change elsewhere
    rows = [*BASE]
    rows[20] = _q("u0", False, False, 0.6552)
    rows[0] = _q("a0", True, False, 0.9, rank=None)
    rows[1] = _q("a1", True, False, 0.9, rank=None)
    metrics, rows = _now(rows)
    result = compare(baseline, metrics, rows)
    assert {r.metric for r in result.regressions} >= {"recall@1", "recall@5"}
    # an old baseline (no confidences recorded) judges every flip in full
    old = {
        **baseline,
        "questions": {k: {"correct": v["correct"]} for k, v in baseline["questions"].items()},
    }
    rows = [*BASE]
    rows[20] = _q("u0", False, False, 0.6552)
    metrics, rows = _now(rows)
    assert not compare(old, metrics, rows, 0.65).passed


def test_the_gate_names_the_questions_at_the_threshold_when_it_fails_too() -> None:
    """`rag eval`'s lines: the verdict, each regression, and the question counted as in the
    baseline, also when something else made the gate fail."""
    baseline = _baseline(BASE)
    rows = [*BASE]
    rows[20] = _q("u0", False, False, 0.6552)
    rows[0] = _q("a0", True, False, 0.9, rank=None)
    rows[1] = _q("a1", True, False, 0.9, rank=None)
    metrics, rows = _now(rows)
    lines = compare(baseline, metrics, rows).lines()
    assert lines[0] == "regression gate FAILED:"
    assert any(line.startswith("  recall@1: ") for line in lines)
    assert lines[-1] == "  at the abstention threshold (counted as in the baseline): u0"
    rows[0], rows[1] = BASE[0], BASE[1]  # the ranks back: only the borderline flip is left
    metrics, rows = _now(rows)
    passed = compare(baseline, metrics, rows).lines()
    assert passed == [
        "regression gate passed",
        "  at the abstention threshold (counted as in the baseline): u0",
    ]
