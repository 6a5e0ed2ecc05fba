"""Calibrate the cross reader on the development articles the training left out: index them
(in two halves), ask every question through the whole answer path, and fit

- ``rank_weight``: how much the second pass's score adds to the cross reader's relevance
  when choosing the answer sentence (the weight citing the evidence most often);
- the answerability: a logistic regression over :data:`rag.answering.cross_read.FEATURES`,
  answerable questions against SQuAD 2.0's unanswerable ones and questions asked of the other
  half's index (off-corpus), and the threshold that abstains on ``WRONGLY_ABSTAINED`` of the
  answerable ones.

The result goes into the cross reader's description (its checksums do not cover it)."""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.cross_read import CROSS_READ, FEATURES
from rag.answering.reader.cross import META_FILE, CrossReader
from rag.answering.reader.verifier import VERIFIER_DIR, Verifier
from rag.config import Settings
from rag.evaluation.metrics import auroc

WRONGLY_ABSTAINED = 0.075
RANK_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
NOISE = 0.0025  # sentence accuracy: a quarter of a point, 4 of the ~1,650 questions
OFF_CORPUS_PER_HALF = 400  # answerable questions of the other half asked off-corpus


@dataclass
class Asked:
    row: list[float]
    label: int  # 1: answerable from the index
    kind: str  # answerable | unanswerable | off-corpus
    cross: list[tuple[float, float]]  # (relevance, second-pass score) per cross-read sentence
    gold: list[bool]  # whether each cross-read sentence lies on the evidence lines


def _rows(data: Path, articles: set[str]) -> list[dict[str, Any]]:
    out = []
    for line in (data / "golden.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["context"][0]["file"] in articles:
                out.append(row)
    return out


def _ask_all(
    settings: Settings,
    corpus: Path,
    model_dir: Path,
    rows: list[tuple[dict[str, Any], str]],
    echo: Callable[[str], None],
    verifier_dir: Path = VERIFIER_DIR,
) -> list[Asked]:
    """Index ``corpus`` and ask ``rows`` through the whole answer path, the cross reader
    being the one in ``model_dir`` (the model being calibrated, not the shipped one) and the
    verifier the one in ``verifier_dir``."""
    from rag.answering.answer import AnswerService
    from rag.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="rag-calibrate-") as tmp:
        runtime = Runtime(
            settings.model_copy(
                update={
                    "corpus_dir": corpus,
                    "index_dir": Path(tmp) / "index",
                    "exact_search": True,
                    "abstain_below": None,
                }
            )
        )
        runtime.ingest_service().ingest()
        service = AnswerService(
            runtime.settings,
            runtime.query_embedder,
            runtime.retriever,
            runtime.default_backend,
            cross=CrossReader(model_dir),
            verifier=Verifier(verifier_dir),
        )
        out: list[Asked] = []
        for n, (row, kind) in enumerate(rows, start=1):
            reading = service.read(row["question"], settings.top_k)
            if not reading.signals:
                continue
            evidence = {
                (e["file"], line)
                for e in row["evidence"]
                for line in range(e["start_line"], e["end_line"] + 1)
            }
            gold = [
                any(
                    (c.passage.chunk.path, line) in evidence
                    for line in range(c.start_line, c.end_line + 1)
                )
                for c in reading.candidates[: len(reading.cross)]
            ]
            label = int(kind == "answerable")
            out.append(Asked(list(reading.signals), label, kind, list(reading.cross), gold))
            if n % 250 == 0:
                echo(f"  calibration: {n:,}/{len(rows):,} questions asked")
        return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a handful of features)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    a = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(a.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + l2 * np.r_[w[:-1], 0.0]
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / scale
    bias = float(w[-1] - (w[:-1] * mean / scale).sum())
    return weights, bias


def calibrate(
    data: Path,
    model_dir: Path,
    settings: Settings,
    dev: list[str],
    seed: int,
    echo: Callable[[str], None] = print,
    limit: int | None = None,
    verifier_dir: Path = VERIFIER_DIR,
) -> dict[str, Any]:
    """Fit and write the calibration into ``model_dir``'s description; returns its metrics.
    ``limit``: at most this many questions of each half (and off-corpus), for a quick run;
    ``verifier_dir``: the verifier to read with (the shipped one unless given)."""
    halves = [sorted(dev)[0::2], sorted(dev)[1::2]]
    rng = random.Random(seed)
    asked: list[Asked] = []
    with tempfile.TemporaryDirectory(prefix="rag-calibrate-corpus-") as tmp:
        for i, half in enumerate(halves):
            corpus = Path(tmp) / f"half{i}"
            corpus.mkdir()
            for name in half:
                shutil.copyfile(data / "corpus" / name, corpus / name)
            own = [
                (r, "answerable" if r["answerable"] else "unanswerable")
                for r in _rows(data, set(half))
            ]
            other = [r for r in _rows(data, set(halves[1 - i])) if r["answerable"]]
            count = min(OFF_CORPUS_PER_HALF, len(other), limit or len(other))
            off = [(r, "off-corpus") for r in rng.sample(other, count)]
            own = own[:limit] if limit else own
            echo(f"  calibration: index of {half}: {len(own):,} questions + {len(off)} off-corpus")
            asked += _ask_all(settings, corpus, model_dir, own + off, echo, verifier_dir)
    answerable = [a for a in asked if a.kind == "answerable"]
    reachable = [a for a in answerable if any(a.gold)]
    accuracy = {
        w: float(
            np.mean([a.gold[int(np.argmax([r + w * f for r, f in a.cross]))] for a in reachable])
        )
        for w in RANK_WEIGHTS
    }
    # the smallest weight within NOISE of the best: weights whose accuracies differ by a
    # few questions are the same to this measurement (1.0 and 1.5: 0.8493 and 0.8506)
    best = max(accuracy.values())
    rank_weight = min(w for w in RANK_WEIGHTS if accuracy[w] >= best - NOISE)
    x = np.asarray([a.row for a in asked], dtype=np.float64)
    y = np.asarray([a.label for a in asked], dtype=np.float64)
    weights, bias = fit_logistic(x, y)
    conf = 1 / (1 + np.exp(-(x @ weights + bias)))
    on = conf[y == 1]
    threshold = float(np.quantile(on, WRONGLY_ABSTAINED))
    kinds = np.asarray([a.kind for a in asked])

    def share(kind: str) -> float:
        return round(float(np.mean(conf[kinds == kind] < threshold)), 4)

    def area(kind: str, values: np.ndarray) -> float:
        mask = (kinds == "answerable") | (kinds == kind)
        got = auroc(list(values[mask]), [bool(k == "answerable") for k in kinds[mask]])
        return round(float(got or 0.0), 4)

    first = np.asarray([1 / (1 + math.exp(-a.row[0])) for a in asked])
    metrics = {
        "questions": len(asked),
        "answerable": len(answerable),
        "answer_among_cross_read": round(len(reachable) / max(len(answerable), 1), 4),
        "sentence_accuracy_by_rank_weight": {str(w): round(v, 4) for w, v in accuracy.items()},
        "auroc_vs_unanswerable": area("unanswerable", conf),
        "auroc_vs_unanswerable_first_reader": area("unanswerable", first),
        "auroc_vs_off_corpus": area("off-corpus", conf),
        "unanswerable_abstained": share("unanswerable"),
        "off_corpus_abstained": share("off-corpus"),
        "answerable_wrongly_abstained": share("answerable"),
    }
    path = model_dir / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["answerability"] = {
        "features": list(FEATURES),
        "weights": [round(float(w), 6) for w in weights],
        "bias": round(bias, 6),
        "threshold": round(threshold, 4),
        "rank_weight": rank_weight,
        "cross_read": CROSS_READ,
        "fitted_on": "the development articles (see development_articles), both halves",
        "metrics": metrics,
    }
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return metrics
