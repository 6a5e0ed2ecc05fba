"""When to narrow a citation to the one line the line chooser picks, chosen on SQuAD training
articles.  The line chooser is right about 3 times in 4: a one-line citation is more precise
per line than the whole sentence, but misses the evidence whenever the chooser is wrong, while
the sentence's full line range still overlaps it.  So the answer's citation is narrowed only
when the chooser's confidence (the softmax probability of its best line among the sentence's
lines) reaches a cutoff, and otherwise keeps the sentence's lines.

The cutoff is chosen on held-out scores (5 folds by article, exactly the networks
``rag train`` fits without each article) of the reader's top sentence for every answerable
training question, by :data:`OBJECTIVE`.  Re-run the choice with
``python -m rag.evaluation.line_cutoff [--data ../shared/benchmarks/squad-train]``: it asks the
questions and fits the networks as ``rag train`` does, into a temporary folder (the shipped
model is not touched), and prints the table; copy the chosen value to
``rag.answering.reader.read.NARROW_CONFIDENCE``.  Never run it on the test benchmark."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader.features import line_features, line_segments
from rag.answering.reader.read import line_confidence
from rag.evaluation.reader_training import HeldOut

BETA = 2.0  # citation precision counts BETA times as much as line-precision
OBJECTIVE = (
    "maximise F2 of citation precision (the share of citations that overlap the evidence: a "
    "miss sends the reader to the wrong place) and citation line-precision (the share of cited "
    "lines that are evidence: a broader citation only costs reading a line more), precision "
    "weighted twice"
)
FALLBACKS = ("sentence", "top2")  # what an unsure chooser cites: the whole sentence, or the
# range of its two best lines
GRID = [round(float(c), 2) for c in np.arange(0.30, 1.001, 0.01)]  # 1.0: narrow when certain


@dataclass(frozen=True)
class Case:
    """The reader's top sentence for one answerable question, as the citation sees it."""

    labels: tuple[bool, ...]  # each of its lines: inside an evidence range
    chosen: int  # the line chooser's best line
    confidence: float  # its probability among the sentence's lines (1.0 for one line)
    second: int = -1  # its second best line (-1: one line)


def cases(held: HeldOut) -> list[Case]:
    """The top sentence of every answerable question's candidates, its lines scored by the
    line chooser fitted without the question's article."""
    out = []
    for r, scores in zip(held.reads, held.reader_scores, strict=True):
        if r.kind != "answerable" or not r.candidates:
            continue
        item = held.items[r.item]
        top = r.candidates[int(np.argmax(scores))] if len(scores) else r.candidates[0]
        s = item.sentences[top]
        if len(s.lines) <= 1:
            out.append(Case(tuple(s.line_labels), 0, 1.0))
            continue
        state = held.states[s.text]
        segments = line_segments(s.text, s.lines)
        rows = line_features(item.asked, s.text, state, segments, held.joint.get((r.item, top)))
        logits = held.lines[int(held.fold[r.item])].score(np.asarray(rows, dtype=np.float64))
        best, confidence = line_confidence(logits)
        second = int(np.argsort(-logits, kind="stable")[1])
        out.append(Case(tuple(s.line_labels), best, confidence, second))
    return out


def cited(case: Case, cutoff: float, fallback: str = "top2") -> range:
    """The lines (0-based within the sentence) cited under ``cutoff``."""
    if case.confidence >= cutoff or case.second < 0:
        return range(case.chosen, case.chosen + 1)
    if fallback == "top2":
        first, last = sorted((case.chosen, case.second))
        return range(first, last + 1)
    return range(len(case.labels))


def f_beta(precision: float, line_precision: float, beta: float = BETA) -> float:
    """F-beta with citation precision in the role weighted ``beta`` times as much."""
    b2 = beta * beta
    denominator = b2 * line_precision + precision
    return (1 + b2) * precision * line_precision / denominator if denominator else 0.0


def metrics(found: Sequence[Case], cutoff: float, fallback: str = "top2") -> dict[str, Any]:
    """Citation precision, line-precision and the objective with ``cutoff``, as ``rag eval``
    counts them (one citation per answer), and the share of multi-line sentences narrowed."""
    correct = lines = evidence = narrowed = 0
    for case in found:
        span = cited(case, cutoff, fallback)
        hits = sum(case.labels[i] for i in span)
        correct += hits > 0
        lines += len(span)
        evidence += hits
        narrowed += len(span) == 1 < len(case.labels)
    precision = correct / max(len(found), 1)
    line_precision = evidence / max(lines, 1)
    multi = sum(len(c.labels) > 1 for c in found)
    return {
        "fallback": fallback,
        "cutoff": cutoff,
        "citation_precision": round(precision, 4),
        "citation_line_precision": round(line_precision, 4),
        "f2": round(f_beta(precision, line_precision), 4),
        "narrowed": round(narrowed / max(multi, 1), 4),
    }


def choose(found: Sequence[Case]) -> tuple[str, float, list[dict[str, Any]]]:
    """The fallback and cutoff by :data:`OBJECTIVE` (ties: the lower cutoff, narrowing
    more), and the table of every pair tried."""
    table = [metrics(found, c, fb) for fb in FALLBACKS for c in GRID]
    best = max(table, key=lambda row: (row["f2"], -row["cutoff"]))
    return str(best["fallback"]), float(best["cutoff"]), table


def main() -> None:
    from rag.config import load_settings
    from rag.evaluation.reader_training import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/benchmarks/squad-train"))
    parser.add_argument("--cache", type=Path, help="keep/reuse the asked questions here")
    args = parser.parse_args()
    if "benchmarks/squad/" in str(args.data.resolve()) + "/":
        raise SystemExit(f"{args.data} is the test benchmark: choose on squad-train")
    held = HeldOut()
    with tempfile.TemporaryDirectory(prefix="rag-line-cutoff-") as tmp:
        train(args.data, load_settings(), Path(tmp), cache=args.cache, held_out=held)
    found = cases(held)
    fallback, cutoff, table = choose(found)
    print(f"objective: {OBJECTIVE}")
    for row in table:
        print("  ".join(f"{k} {v}" for k, v in row.items()))
    print(f"always narrow: {metrics(found, 0.0)}")
    print(f"never narrow:  {metrics(found, 1.01, 'sentence')}")
    print(f"chosen: {fallback} below {cutoff}")


if __name__ == "__main__":
    main()
