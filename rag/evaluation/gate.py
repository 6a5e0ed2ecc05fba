"""The regression gate: compare a run with a committed baseline.

It judges behaviour, not rounding. Embedding kernels differ slightly between CPUs, so a
question whose confidence sits at the abstention threshold can land on either side of it on
another machine. Such a question is *borderline*: its decision to abstain differs from the
baseline's, yet its confidence moved by at most ``margin`` and lies within ``margin`` of the
threshold in both runs. A borderline question keeps the baseline's abstention outcome when the
metrics are recomputed for the gate (its retrieval rank and confidence stay the current ones)
and is not listed as "right before, wrong now". Anything else that changes (a rank, an
answer, a citation, a confidence that moved by more than the margin) counts in full.

Rows made from a person's marks (``origin: "feedback"``, `rag feedback export`) are held
one by one: such a question right in the baseline and wrong now fails the gate on its own,
whatever the averages say, since a mistake someone took the trouble to mark must not come
back unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.evaluation.metrics import summary_metrics

DEFAULT_TOLERANCE = 0.01  # absolute drop allowed before the gate fails
# How far a confidence may move, and how near the threshold it must stay, to count as a
# rounding difference between CPUs (observed between AVX2 and VNNI machines: < 0.01).
DEFAULT_MARGIN = 0.02
LOWER_IS_BETTER = frozenset({"wrongly_abstained"})
# The fields of a row that follow from the decision to abstain (the answer and its citation).
FEEDBACK = "feedback"  # the origin of rows made from marks (each one guarded)
OUTCOME_FIELDS = ("abstained", "correct", "exact_match", "f1", "contains", "citation")


@dataclass(frozen=True)
class Regression:
    metric: str
    baseline: float
    current: float
    tolerance: float


@dataclass
class GateResult:
    regressions: list[Regression]
    flipped: list[str]  # question ids right in the baseline, wrong now (borderline ones excluded)
    borderline: list[str] = field(default_factory=list)  # decided differently by rounding alone
    guarded: list[str] = field(default_factory=list)  # flipped rows from marks: each one fails
    unknown: list[str] = field(default_factory=list)  # questions the baseline does not hold

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.guarded

    def lines(self) -> list[str]:
        """What `rag eval` says of the gate: the verdict, each regression, the questions right
        before and wrong now, and those counted as in the baseline (at the threshold), the
        last also when the gate fails (they explain what it did not count)."""
        out = ["regression gate passed" if self.passed else "regression gate FAILED:"]
        out += [
            f"  {r.metric}: {r.baseline:.4f} -> {r.current:.4f} (tolerance {r.tolerance})"
            for r in self.regressions
        ]
        if self.guarded:
            out.append(f"  marked answers wrong again: {', '.join(self.guarded)}")
        if self.flipped:
            out.append(f"  right before, wrong now: {', '.join(self.flipped)}")
        if self.unknown:
            new = ", ".join(self.unknown)
            out.append(f"  not in the baseline (not guarded until it is updated): {new}")
        if self.borderline:
            out.append(
                "  at the abstention threshold (counted as in the baseline): "
                + ", ".join(self.borderline)
            )
        return out


def baseline_payload(
    meta: dict[str, Any], summary: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """What ``--update-baseline`` writes: the metrics and, per question, its outcome and
    confidence (what the gate needs to tell rounding from a change)."""
    return {
        "meta": meta,
        "summary": summary["metrics"],
        "tolerance": {"default": DEFAULT_TOLERANCE},
        "margin": DEFAULT_MARGIN,
        "questions": {
            r["id"]: {
                **{k: r[k] for k in OUTCOME_FIELDS},
                "confidence": r["confidence"],
                **({"origin": r["origin"]} if r.get("origin") else {}),
            }
            for r in rows
        },
    }


def dump_baseline(payload: dict[str, Any]) -> str:
    """The baseline as JSON text, one line per question (short diffs when it is updated)."""
    head = {k: v for k, v in payload.items() if k != "questions"}
    text = json.dumps(head, indent=2)[:-2]  # without the closing brace
    rows = ",\n".join(
        f"    {json.dumps(qid)}: {json.dumps(row)}" for qid, row in payload["questions"].items()
    )
    return f'{text},\n  "questions": {{\n{rows}\n  }}\n}}\n'


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"baseline not found: {path}", "create it with `rag eval --update-baseline`"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"baseline {path} is not JSON: {exc}") from None
    if "summary" not in data:
        raise InputError(f"baseline {path} has no summary", "regenerate it with --update-baseline")
    return data


def is_borderline(
    before: dict[str, Any], row: dict[str, Any], threshold: float | None, margin: float
) -> bool:
    """The decision to abstain differs from the baseline's only because the confidence
    rounded to the other side of the threshold."""
    then, now = before.get("confidence"), row.get("confidence")
    if threshold is None or then is None or now is None or "abstained" not in before:
        return False
    if bool(before["abstained"]) == bool(row["abstained"]):
        return False
    return bool(
        abs(now - then) <= margin
        and abs(then - threshold) <= margin
        and abs(now - threshold) <= margin
    )


def compare(
    baseline: dict[str, Any],
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    threshold: float | None = None,
) -> GateResult:
    """Regressions of ``metrics`` (from ``rows``) against ``baseline``.  ``threshold`` is
    the run's abstention threshold (default: the one the baseline recorded)."""
    tolerances = baseline.get("tolerance", {})
    default = float(tolerances.get("default", DEFAULT_TOLERANCE))
    margin = float(baseline.get("margin", DEFAULT_MARGIN))
    if threshold is None:
        threshold = baseline.get("meta", {}).get("abstain_below")
    known = baseline.get("questions", {})
    borderline = [
        r["id"]
        for r in rows
        if r["id"] in known and is_borderline(known[r["id"]], r, threshold, margin)
    ]
    if borderline:  # the baseline's outcome for those, everything else as measured now
        keep = set(borderline)
        rows = [
            {**r, **{k: known[r["id"]][k] for k in OUTCOME_FIELDS}} if r["id"] in keep else r
            for r in rows
        ]
        metrics = {**metrics, **summary_metrics(rows)}
    regressions = []
    for name, before in baseline["summary"].items():
        now = metrics.get(name)
        if before is None or now is None:
            continue
        tolerance = float(tolerances.get(name, default))
        drop = (now - before) if name in LOWER_IS_BETTER else (before - now)
        if drop > tolerance + 1e-9:
            regressions.append(Regression(name, float(before), float(now), tolerance))
    flipped = [r["id"] for r in rows if known.get(r["id"], {}).get("correct") and not r["correct"]]
    marked = {r["id"] for r in rows if r.get("origin") == FEEDBACK}
    marked |= {qid for qid, q in known.items() if q.get("origin") == FEEDBACK}
    guarded = [qid for qid in flipped if qid in marked]
    unknown = [r["id"] for r in rows if known and r["id"] not in known]
    return GateResult(regressions, flipped, borderline, guarded, unknown)
