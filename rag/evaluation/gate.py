"""The regression gate: compare a run with a committed baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import InputError

DEFAULT_TOLERANCE = 0.01  # absolute drop allowed before the gate fails
LOWER_IS_BETTER = frozenset({"wrongly_abstained"})


@dataclass(frozen=True)
class Regression:
    metric: str
    baseline: float
    current: float
    tolerance: float


@dataclass
class GateResult:
    regressions: list[Regression]
    flipped: list[str]  # question ids right in the baseline, wrong now

    @property
    def passed(self) -> bool:
        return not self.regressions


def baseline_payload(
    meta: dict[str, Any], summary: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "meta": meta,
        "summary": summary["metrics"],
        "tolerance": {"default": DEFAULT_TOLERANCE},
        "questions": {r["id"]: {"correct": r["correct"]} for r in rows},
    }


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


def compare(
    baseline: dict[str, Any], metrics: dict[str, Any], rows: list[dict[str, Any]]
) -> GateResult:
    tolerances = baseline.get("tolerance", {})
    default = float(tolerances.get("default", DEFAULT_TOLERANCE))
    regressions = []
    for name, before in baseline["summary"].items():
        now = metrics.get(name)
        if before is None or now is None:
            continue
        tolerance = float(tolerances.get(name, default))
        drop = (now - before) if name in LOWER_IS_BETTER else (before - now)
        if drop > tolerance + 1e-9:
            regressions.append(Regression(name, float(before), float(now), tolerance))
    known = baseline.get("questions", {})
    flipped = [r["id"] for r in rows if known.get(r["id"], {}).get("correct") and not r["correct"]]
    return GateResult(regressions, flipped)
