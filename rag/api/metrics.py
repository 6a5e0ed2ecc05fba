"""Prometheus metrics in the text exposition format, kept per app (no global registry)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        self.name, self.doc, self.label_names = name, doc, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, doc: str, read: Callable[[], float]) -> None:
        super().__init__(name, doc)
        self._read = read

    def lines(self) -> list[str]:
        try:
            value = float(self._read())
        except Exception:
            return []
        return [f"{self.name} {_number(value)}"]


class _Series:
    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0
        self.n = 0


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, doc, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, _Series] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series(len(self.buckets))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series.counts[i] += 1
            series.total += value
            series.n += 1

    def count(self, *labels: str) -> int:
        with self._lock:
            series = self._series.get(labels)
            return series.n if series else 0

    def lines(self) -> list[str]:
        out: list[str] = []
        names = self.label_names
        with self._lock:
            for key, series in sorted(self._series.items()):
                for bound, c in zip(self.buckets, series.counts, strict=True):
                    le = f'le="{_number(bound)}"'
                    out.append(f"{self.name}_bucket{_labels(names, key, le)} {c}")
                inf = 'le="+Inf"'
                out.append(f"{self.name}_bucket{_labels(names, key, inf)} {series.n}")
                out.append(f"{self.name}_sum{_labels(names, key)} {_number(series.total)}")
                out.append(f"{self.name}_count{_labels(names, key)} {series.n}")
        return out


class Metrics:
    """Everything /metrics reports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "rag_http_requests_total",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time from request to the end of the response, by method and route.",
            ("method", "route"),
        )
        self.retrieval = Histogram(
            "rag_retrieval_seconds", "Retrieval time (ask and search).", ("route",)
        )
        self.llm = Histogram(
            "rag_llm_seconds", "Time the LLM took to generate an answer.", ("backend",)
        )
        self.llm_rejected = Counter(
            "rag_llm_rejected_total",
            "Questions refused because the LLM was busy (queue_full: 429, wait_timeout: 503).",
            ("reason",),
        )
        self.llm_stopped = Counter(
            "rag_llm_stopped_total",
            "Generations stopped early (client disconnected, deadline passed).",
            ("reason",),
        )
        self.jobs = Counter("rag_ingest_jobs_total", "Ingest jobs submitted.", ("source",))
        self._all: list[_Metric] = [
            self.requests,
            self.latency,
            self.retrieval,
            self.llm,
            self.llm_rejected,
            self.llm_stopped,
            self.jobs,
        ]

    def add_gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self._all.append(Gauge(name, doc, read))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines += metric.header() + metric.lines()
        return "\n".join(lines) + "\n"
