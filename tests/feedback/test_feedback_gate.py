"""The gate holds marked answers one by one: a row from `rag feedback export` that was right
in the baseline and is wrong now fails `rag eval`, even where the averages stay in tolerance.
End to end: an answer marked right, exported, baselined with the hand-made golden file; then
the document changes under it and `rag eval` fails naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rag.evaluation.gate import baseline_payload, compare
from rag.evaluation.metrics import summary_metrics
from rag.feedback.export import export
from rag.feedback.marking import FeedbackService
from rag.feedback.records import FeedbackIn, LineRange
from tests.conftest import make_runtime
from tests.feedback.test_feedback import BRIDGES, BRIDGES_TEXT, KESTREL, MILLS, MILLS_TEXT

RAG = str(Path(sys.executable).parent / "rag")


def _row(qid: str, right: bool, origin: str | None = None) -> dict[str, Any]:
    return {
        "id": qid,
        "origin": origin,
        "answerable": True,
        "abstained": False,
        "confidence": 0.9,
        "hit_rank": 1,
        "exact_match": 0.0,
        "f1": 1.0 if right else 0.0,
        "contains": 1.0 if right else 0.0,
        "citation": {
            "cited": 1,
            "correct": int(right),
            "cited_lines": 1,
            "evidence_lines_cited": int(right),
        },
        "correct": right,
    }


def test_one_marked_answer_wrong_again_fails_the_gate_within_tolerance() -> None:
    rows = [_row(f"g{i}", True) for i in range(200)] + [_row("fb-0001-abc123", True, "feedback")]
    baseline = baseline_payload({}, {"metrics": summary_metrics(rows)}, rows)
    baseline["tolerance"] = {"default": 0.02}
    assert baseline["questions"]["fb-0001-abc123"]["origin"] == "feedback"
    now = [*rows[:-1], _row("fb-0001-abc123", False, "feedback")]
    result = compare(baseline, summary_metrics(now), now)
    assert result.regressions == []  # 1 of 201: the averages alone would let it through
    assert not result.passed and result.guarded == ["fb-0001-abc123"]
    assert "  marked answers wrong again: fb-0001-abc123" in result.lines()
    # the same flip of a hand-made question is within tolerance, as before
    plain = [*rows[:-1], _row("fb-0001-abc123", True, "feedback")]
    plain[0] = _row("g0", False)
    assert compare(baseline, summary_metrics(plain), plain).passed


def _eval(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAG, "eval", *map(str, args)], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # two `rag eval` runs: minutes on a busy machine
def test_rag_eval_fails_when_a_marked_answer_regresses(
    tmp_path: Path, embedder: Any, cli_env: dict[str, str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / BRIDGES).write_text(BRIDGES_TEXT)
    (corpus / MILLS).write_text(MILLS_TEXT)
    runtime = make_runtime(tmp_path, embedder, corpus=corpus, llm_backend="extractive")
    runtime.ingest_service().ingest()
    answer = runtime.answer_service.ask(KESTREL)
    assert [(c.path, c.start_line) for c in answer.citations] == [(BRIDGES, 2)]
    marked = FeedbackService(runtime.settings).record(
        FeedbackIn(
            mark="right",
            question=KESTREL,
            answer=answer.answer,
            citations=[LineRange(path=BRIDGES, start_line=2, end_line=2)],
            backend=answer.backend,
            model=answer.model,
        ),
        "api",
    )
    feedback = tmp_path / "feedback.jsonl"
    export([marked], feedback)
    golden = tmp_path / "golden.jsonl"
    hand = {"id": "h-1", "question": "Until when did the Arun tide mill grind corn?",
            "answers": ["1934"], "answerable": True,
            "evidence": [{"file": MILLS, "start_line": 1, "end_line": 1}]}  # fmt: skip
    golden.write_text(json.dumps(hand) + "\n")
    baseline = tmp_path / "baseline.json"
    goldens = ["--golden", golden, "--golden", feedback]
    first = _eval(cli_env, *goldens, "--corpus", corpus, "--baseline", baseline,
                  "--update-baseline", "--out", tmp_path / "run1")  # fmt: skip
    assert first.returncode == 0, first.stderr
    written = json.loads(baseline.read_text())
    fb_id = next(q for q in written["questions"] if q.startswith("fb-"))
    assert (
        written["questions"][fb_id] | {"correct": True, "origin": "feedback"}
        == (written["questions"][fb_id])
    )
    assert [g["questions"] for g in written["meta"]["goldens"]] == [1, 1]
    # The bridge's line moves: an answer citing the new line no longer cites the evidence.
    (corpus / BRIDGES).write_text("# Bridges of the Arun\n\nNotes from the archive.\n"
                                  + BRIDGES_TEXT.split("\n", 1)[1])  # fmt: skip
    second = _eval(cli_env, *goldens, "--corpus", corpus, "--baseline", baseline,
                   "--out", tmp_path / "run2")  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert "regression gate FAILED:" in second.stderr
    assert f"  marked answers wrong again: {fb_id}" in second.stderr
