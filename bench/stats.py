"""Small helpers: latency summaries and timers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/mean/max in milliseconds (numpy's linear interpolation) and the count."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None}
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "max_ms": round(float(ms.max()), 2),
    }
