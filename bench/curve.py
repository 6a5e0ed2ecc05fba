"""The cost curve: search p50, `/v1/ask` p50 and server RSS against the index's size
(10k, 100k, 1M chunks), drawn as an SVG from results.json's 1M section (no plotting
library: a few lines and labels, like the eval report's charts)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PAD = 300, 220, 44
PANELS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("search p50 (ms)", lambda t: t["search"]["all"]["p50_ms"]),
    ("/v1/ask p50, 1 client, warm (ms)", lambda t: t["server"]["ask_1_client_warm"]["p50_ms"]),
    ("server RSS peak (MB)", lambda t: t["server"]["rss_after_load_mb"]["VmHWM"]),
)


def _chunks(name: str) -> float:
    return (
        float(name[:-1]) * (1e6 if name.endswith("M") else 1e3) if name[-1] in "kM" else float(name)
    )


def _shown(chunks: float) -> str:
    if chunks >= 1e6:
        return f"{chunks / 1e6:g}M"
    return f"{chunks / 1e3:g}k" if chunks >= 1e3 else f"{chunks:g}"


def _panel(x0: int, title: str, points: list[tuple[str, float, float]]) -> list[str]:
    top = max(v for _, _, v in points) * 1.2 or 1.0
    lo, hi = math.log10(points[0][1]), math.log10(points[-1][1])
    span = (hi - lo) or 1.0

    def xy(n: float, v: float) -> tuple[float, float]:
        x = x0 + PAD + (math.log10(n) - lo) / span * (WIDTH - 2 * PAD)
        return x, HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD)

    out = [
        f'<text x="{x0 + WIDTH / 2}" y="18" font-size="12" text-anchor="middle">{title}</text>',
        f'<line x1="{x0 + PAD}" y1="{HEIGHT - PAD}" x2="{x0 + WIDTH - PAD / 2}" '
        f'y2="{HEIGHT - PAD}" stroke="#888"/>',
        f'<line x1="{x0 + PAD}" y1="{PAD / 2}" x2="{x0 + PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(n, v) for _, n, v in points))
    out.append(f'<polyline points="{path}" fill="none" stroke="#2a6fb0" stroke-width="2"/>')
    for name, n, v in points:
        x, y = xy(n, v)
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2a6fb0"/>')
        out.append(
            f'<text x="{x:.1f}" y="{y - 8:.1f}" font-size="11" text-anchor="middle">{v:g}</text>'
        )
        below = HEIGHT - PAD + 16
        out.append(
            f'<text x="{x:.1f}" y="{below}" font-size="11" text-anchor="middle">{name}</text>'
        )
    return out


def write_curve(results: dict[str, Any], out: Path) -> Path | None:
    """Draw the curve when the run measured the 1M section; the SVG's path, or None."""
    tiers = results.get("measurements", {}).get("million", {}).get("tiers")
    if not tiers:
        return None
    names = sorted(tiers, key=_chunks)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH * len(PANELS)}" '
        f'height="{HEIGHT + 20}" role="img" aria-label="cost against index size" '
        'font-family="sans-serif">'
    ]
    for i, (title, value) in enumerate(PANELS):
        try:
            points = [
                (_shown(_chunks(n)), _chunks(n), round(float(value(tiers[n])), 1)) for n in names
            ]
        except (KeyError, TypeError):
            continue
        parts += _panel(i * WIDTH, title, points)
    cpu = results.get("meta", {}).get("cpu", {})
    note = f"chunks in the index; {cpu.get('model', '?')}, {cpu.get('logical_cpus', '?')} CPUs"
    parts.append(
        f'<text x="{WIDTH * len(PANELS) / 2}" y="{HEIGHT + 12}" font-size="11" '
        f'text-anchor="middle">{note}</text></svg>'
    )
    out.write_text("\n".join(parts) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.curve RESULTS.json SVG``: draw a results file's cost curve again."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(main.__doc__)
        return 2
    written = write_curve(json.loads(Path(args[0]).read_text()), Path(args[1]))
    print(written or "no 1M section in that file: nothing drawn")
    return 0 if written else 1


if __name__ == "__main__":
    raise SystemExit(main())
