"""Evaluation output: per-question JSONL, summary.json, report.md and report.html (inline SVG)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rag.evaluation.gate import GateResult

PERCENT = {"accuracy", "exact_match", "f1", "contains", "mrr", "abstention_auroc"}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def worst(rows: list[dict[str, Any]], n: int = 15) -> list[dict[str, Any]]:
    """Wrong answers, most confident first (confidently wrong is worst)."""
    wrong = [r for r in rows if not r["correct"]]
    return sorted(wrong, key=lambda r: (-r["confidence"], r["id"]))[:n]


def write_outputs(
    out: Path,
    meta: dict[str, Any],
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    gate: GateResult | None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(
        json.dumps({"meta": meta, **summary}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    before = (baseline or {}).get("summary", {})
    (out / "report.md").write_text(_markdown(meta, summary, rows, before, gate), encoding="utf-8")
    (out / "report.html").write_text(_html(meta, summary, rows, before, gate), encoding="utf-8")


def _metric_rows(summary: dict[str, Any], before: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, v, before.get(k)) for k, v in summary["metrics"].items()]


def _markdown(
    meta: dict[str, Any],
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    before: dict[str, Any],
    gate: GateResult | None,
) -> str:
    lines = [
        "# rag evaluation",
        "",
        f"{summary['questions']} questions ({summary['answerable']} answerable, "
        f"{summary['unanswerable']} unanswerable); backend **{meta['backend']}** "
        f"({meta['model']}), top-k {meta['top_k']}, embeddings {meta['embedding_model']}, "
        f"chunker {meta['chunker']}, "
        f"prompts {', '.join(meta.get('prompt_versions', [])) or 'none'}.",
        "",
    ]
    if meta.get("interrupted"):
        lines += ["**Interrupted: partial results.**", ""]
    if gate is not None:
        verdict = "passed" if gate.passed else "FAILED"
        lines += [f"Regression gate: **{verdict}**.", ""]
        for reg in gate.regressions:
            lines.append(
                f"- {reg.metric}: {reg.baseline:.3f} → {reg.current:.3f} "
                f"(tolerance {reg.tolerance})"
            )
        if gate.flipped:
            lines.append(f"- right before, wrong now: {', '.join(gate.flipped)}")
        if gate.borderline:
            lines.append(
                f"- at the abstention threshold, counted as in the baseline: "
                f"{', '.join(gate.borderline)}"
            )
        lines.append("")
    lines += ["| metric | value | baseline | change |", "| --- | --- | --- | --- |"]
    for name, value, base in _metric_rows(summary, before):
        change = (
            f"{value - base:+.3f}"
            if isinstance(value, float | int) and isinstance(base, float | int)
            else ""
        )
        lines.append(f"| {name} | {_fmt(value)} | {_fmt(base)} | {change} |")
    lines += ["", "| latency (ms) | p50 | p95 |", "| --- | --- | --- |"]
    for stage, v in summary["latency_ms"].items():
        lines.append(f"| {stage} | {v['p50']} | {v['p95']} |")
    lines += ["", "## Worst questions (wrong, most confident first)", ""]
    for r in worst(rows):
        gold = " / ".join(r["gold"]) or "(unanswerable)"
        cites = ", ".join(f"{c['path']}:{c['start_line']}" for c in r["citations"]) or "none"
        lines.append(
            f"- `{r['id']}` {r['question']} — gold: {gold}; answer: {r['answer'][:160]!r}; "
            f"cited: {cites}; confidence {r['confidence']:.2f}"
        )
    return "\n".join(lines) + "\n"


def _bars(summary: dict[str, Any], before: dict[str, Any]) -> str:
    """Grouped horizontal bars: each metric now (blue) against the baseline (grey)."""
    items = [(k, v, before.get(k)) for k, v in summary["metrics"].items() if v is not None]
    height = 26 * len(items) + 30
    parts = [f'<svg width="640" height="{height}" role="img" aria-label="metrics">']
    for i, (name, value, base) in enumerate(items):
        y = 20 + 26 * i
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{html.escape(name)}</text>')
        if isinstance(base, float | int):
            parts.append(
                f'<rect x="180" y="{y}" width="{max(0.0, min(1.0, base)) * 400:.1f}" '
                f'height="8" fill="#bbb"><title>baseline {base:.3f}</title></rect>'
            )
        parts.append(
            f'<rect x="180" y="{y + 9}" width="{max(0.0, min(1.0, value)) * 400:.1f}" '
            f'height="10" fill="#2b6cb0"><title>{value:.3f}</title></rect>'
            f'<text x="{186 + max(0.0, min(1.0, value)) * 400:.1f}" y="{y + 18}" '
            f'font-size="11">{value:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram(values: list[float], bins: int = 20) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / top * bins))] += 1
    peak = max(counts)
    parts = ['<svg width="640" height="180" role="img" aria-label="latency histogram">']
    for i, c in enumerate(counts):
        h = 140 * c / peak
        lo, hi = top * i / bins, top * (i + 1) / bins
        parts.append(
            f'<rect x="{20 + i * 30}" y="{150 - h:.1f}" width="26" height="{h:.1f}" '
            f'fill="#38a169"><title>{lo:.0f}–{hi:.0f} ms: {c}</title></rect>'
        )
    parts.append('<text x="20" y="170" font-size="11">0 ms</text>')
    parts.append(f'<text x="560" y="170" font-size="11">{top:.0f} ms</text></svg>')
    return "".join(parts)


def _html(
    meta: dict[str, Any],
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    before: dict[str, Any],
    gate: GateResult | None,
) -> str:
    esc = html.escape
    verdict = ""
    if gate is not None:
        color = "#276749" if gate.passed else "#c53030"
        text = "passed" if gate.passed else "FAILED"
        details = "".join(
            f"<li>{esc(r.metric)}: {r.baseline:.3f} → {r.current:.3f}</li>"
            for r in gate.regressions
        )
        flipped = (
            f"<li>right before, wrong now: {esc(', '.join(gate.flipped))}</li>"
            if gate.flipped
            else ""
        )
        border = (
            f"<li>at the abstention threshold, counted as in the baseline: "
            f"{esc(', '.join(gate.borderline))}</li>"
            if gate.borderline
            else ""
        )
        verdict = (
            f'<p style="color:{color};font-weight:bold">Regression gate {text}</p>'
            f"<ul>{details}{flipped}{border}</ul>"
        )
    worst_rows = "".join(
        f"<tr><td>{esc(r['id'])}</td><td>{esc(r['question'])}</td>"
        f"<td>{esc(' / '.join(r['gold']) or '(unanswerable)')}</td>"
        f"<td>{esc(r['answer'][:200])}</td>"
        f"<td>{esc(', '.join(c['path'] + ':' + str(c['start_line']) for c in r['citations']))}</td>"
        f"<td>{r['confidence']:.2f}</td></tr>"
        for r in worst(rows)
    )
    latency = "".join(
        f"<tr><td>{esc(k)}</td><td>{v['p50']}</td><td>{v['p95']}</td></tr>"
        for k, v in summary["latency_ms"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rag evaluation</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:4px 8px;font-size:13px;
vertical-align:top}}h2{{margin-top:1.6em}}</style></head><body>
<h1>rag evaluation</h1>
<p>{summary["questions"]} questions ({summary["answerable"]} answerable, {summary["unanswerable"]}
unanswerable) · backend <b>{esc(str(meta["backend"]))}</b> ({esc(str(meta["model"]))}) · top-k
{meta["top_k"]} · {esc(str(meta["embedding_model"]))} · {esc(str(meta["chunker"]))}</p>
{verdict}
<h2>Metrics (blue) against the baseline (grey)</h2>{_bars(summary, before)}
<h2>Latency</h2><table><tr><th>stage</th><th>p50 ms</th><th>p95 ms</th></tr>{latency}</table>
<p>Total time per question:</p>{_histogram([r["latency_ms"]["total"] for r in rows])}
<h2>Worst questions</h2><p>Wrong answers, most confident first.</p>
<table><tr><th>id</th><th>question</th><th>gold</th><th>answer</th><th>cited</th>
<th>conf.</th></tr>{worst_rows}</table>
</body></html>
"""
