"""``rag train --part verifier``: fine-tune the verifier (:mod:`rag.answering.reader.verifier`)
from the cross reader's finished training checkpoint on the training articles' verifier pairs
(:mod:`rag.evaluation.verifier_data`; the same development split as the cross reader's),
export it as int8 ONNX, measure it on the development articles, and re-calibrate the
answerability (whose features include the verifier's logit) with it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader.cross import TOKENIZER_FILE, CrossReader
from rag.answering.reader.verifier import MAX_TOKENS, META_FILE, MODEL_FILE, Verifier, window
from rag.config import Settings
from rag.evaluation.cross_calibrate import calibrate
from rag.evaluation.cross_data import Question, dev_articles, load_questions
from rag.evaluation.cross_run import commit
from rag.evaluation.cross_run import write_card as write_cross_card
from rag.evaluation.cross_training import (
    TrainConfig,
    base_model_dir,
    describe,
    export_int8,
    progress_echo,
    staged,
    train,
)
from rag.evaluation.metrics import auroc
from rag.evaluation.verifier_data import make_verifier_pairs

CONFIG = TrainConfig(epochs=2.0, lr=3e-5, head_lr=1e-4, span_weight=0.0)


def fit_verifier(
    data: Path, work: Path, start: Path, device: str, echo: Callable[[str], None]
) -> tuple[Any, int, list[str], list[Question]]:
    """Train (or resume); the network, its pair count, the development articles and their
    questions."""
    questions = load_questions(data)
    dev = dev_articles(questions, CONFIG.seed)
    fit = [q for q in questions if q.paragraph.article not in dev]
    held = [q for q in questions if q.paragraph.article in dev]
    pairs = make_verifier_pairs(fit)
    echo(f"verifier: {len(pairs):,} pairs from {len(fit):,} questions; checkpoints in {work}")
    net = train(pairs, work, CONFIG, device, progress_echo(echo, CONFIG.batch), start, MAX_TOKENS)
    return net, len(pairs), sorted(dev), held


def measure(verifier: Verifier, cross: CrossReader, questions: list[Question]) -> dict[str, Any]:
    """On each development question's own paragraph: the verifier's logit for the window of
    the sentence the cross reader ranks first, answerable against unanswerable (AUROC), beside
    the cross reader's best relevance on the same questions."""
    scores, relevance, labels = [], [], []
    for q in questions:
        texts = [s[2] for s in q.paragraph.sentences]
        if not texts or (q.answerable and q.gold is None):
            continue
        outs = cross.read(q.question, texts)
        top = int(np.argmax([o.relevance for o in outs]))
        relevance.append(outs[top].relevance)
        scores.append(verifier.score(q.question, window(texts, top)))
        labels.append(bool(q.answerable))
    return {
        "questions": len(labels),
        "answerable": int(sum(labels)),
        "auroc_verifier": round(float(auroc(scores, labels) or 0.0), 4),
        "auroc_cross_relevance": round(float(auroc(relevance, labels) or 0.0), 4),
        "auroc_sum": round(
            float(auroc([a + b for a, b in zip(scores, relevance, strict=True)], labels) or 0.0),
            4,
        ),
    }


def train_verifier(
    data: Path,
    out: Path,
    cross_dir: Path,
    work: Path,
    start: Path,
    settings: Settings,
    device: str = "cpu",
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, export and measure the verifier; write it (model, description, card) to
    ``out``; re-calibrate the answerability in the cross reader at ``cross_dir`` with it."""
    net, count, dev, held = fit_verifier(data, work, start, device, echo)
    trained = float(net.train_seconds)
    with staged(out, ".verifier-") as staging:
        export_int8(net, staging / MODEL_FILE, work)
        shutil.copyfile(base_model_dir() / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        extra = {
            "base": "the cross reader's training checkpoint (all-MiniLM-L6-v2 fine-tuned)",
            "training": asdict(CONFIG),
            "max_tokens": MAX_TOKENS,
            "trained_at_commit": commit(),
            "pairs": count,
            "development_articles": dev,
            "train_seconds": round(trained),
        }
        describe(staging, extra, MODEL_FILE, META_FILE)
        metrics = measure(Verifier(staging), CrossReader(cross_dir), held)
        echo(f"development articles (int8): {metrics}")
        describe(staging, {**extra, "development": metrics}, MODEL_FILE, META_FILE)
        write_card(staging)
        echo("calibrating answerability on the development articles (the whole answer path)")
        calibration = calibrate(data, cross_dir, settings, dev, CONFIG.seed, echo, None, staging)
        echo(f"calibration: {calibration}")
        write_cross_card(cross_dir)
    return {"development": metrics, "calibration": calibration}


def write_card(folder: Path) -> None:
    """MODEL_CARD.md from the verifier's description."""
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    t = meta.get("training", {})
    size = (folder / MODEL_FILE).stat().st_size / 1e6
    lines = [
        "# Verifier (rag-cross-reader/1 format)",
        "",
        "The cross reader's network (MiniLM, all-MiniLM-L6-v2's weights fine-tuned as a",
        "cross-encoder), fine-tuned further: `[CLS] question [SEP] window [SEP]` (at most",
        f"{meta.get('max_tokens')} tokens; the window is a sentence with the sentences before and",
        "after it) -> a logit from [CLS]: does the window's sentence answer the question? Its",
        "logit is a feature of the answerability (see the cross reader's calibration).",
        f"Run as int8 ONNX, weights per channel in 7 bits, {size:.1f} MB; checksums in",
        "`verifier.json`, checked at load.",
        "",
        "## Data",
        f"`squad-train` ({meta.get('pairs', 0):,} pairs), the cross reader's development articles",
        f"({', '.join(meta.get('development_articles', []))}) left out. Label 1: an answerable",
        "question's answer sentence. Label 0: the sentence holding the plausible answer of a",
        "SQuAD 2.0 unanswerable question (the hard negative), and for every third answerable",
        "question a sentence two or more away from the answer sharing most words with it.",
        "",
        "## Training",
        "`make train` (`rag train --part verifier`), from the cross reader's finished training",
        f"checkpoint; seed {t.get('seed')}; {t.get('epochs')} epochs; batch {t.get('batch')},",
        f"AdamW lr {t.get('lr')} (head {t.get('head_lr')}), binary cross-entropy; resumable.",
        f"Trained at commit {meta.get('trained_at_commit')} in {meta.get('train_seconds')} s on",
        "2 CPU cores.",
        "",
        "## Development articles (int8; the window of the sentence the cross reader ranks first",
        "in the question's paragraph; AUROC answerable against unanswerable)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in meta.get("development", {}).items()],
        "",
    ]
    (folder / "MODEL_CARD.md").write_text("\n".join(lines), encoding="utf-8")
