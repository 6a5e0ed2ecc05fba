"""``rag train`` / ``make train``: fit the reader on SQuAD training articles and write the
model, its description and a model card.  Seeded; every metric it reports is cross-validated
by article (each article's questions scored by networks fitted without that article)."""

from __future__ import annotations

import json
import pickle
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader import net
from rag.answering.reader.features import (
    CHEAP,
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    States,
    line_features,
    line_segments,
    question_features,
    sentence_features,
)
from rag.answering.reader.joint import JointOutput
from rag.answering.reader.model import MODEL_DIR, NETS, ReaderModel
from rag.answering.reader.read import Reader
from rag.config import Settings
from rag.evaluation.golden import load_golden
from rag.evaluation.joint_training import cross_fit, describe
from rag.evaluation.reader_data import Asked, Read, article_of, ask, cheap_rows, select
from rag.evaluation.reader_report import cross_validated, write_card

FOLDS = 5
OFF_CORPUS_EVERY = 4  # every fourth answerable question is also asked without its article
WRONGLY_ABSTAINED = 0.075  # the threshold keeps this share of answerable questions below it
HIDDEN = {"rank": 0, "reader": 16, "lines": 8, "answerable": 0}
EPOCHS = {"rank": 300, "reader": 400, "lines": 300, "answerable": 600}
LR = {"rank": 0.03, "reader": 0.01, "lines": 0.02, "answerable": 0.03}


@dataclass
class HeldOut:
    """What :func:`fit_all` scored without each article (for choices made on top of the
    networks, e.g. when to narrow a citation): the asked questions, their sentences' token
    states, the candidate sets, the reader's held-out scores of them, each question's fold and
    the line chooser fitted without each fold."""

    items: list[Asked] = field(default_factory=list)
    states: dict[str, States] = field(default_factory=dict)
    reads: list[Read] = field(default_factory=list)
    reader_scores: list[np.ndarray] = field(default_factory=list)
    fold: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    lines: dict[int, net.Net] = field(default_factory=dict)
    joint: dict[tuple[int, int], JointOutput] = field(default_factory=dict)


def _fit(name: str, x: np.ndarray, y: np.ndarray, seed: int, **kw: Any) -> net.Net:
    return net.fit(x, y, hidden=HIDDEN[name], epochs=EPOCHS[name], lr=LR[name], seed=seed, **kw)


def _grouped(blocks: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    x = np.vstack(blocks) if blocks else np.zeros((0, 1))
    y = np.concatenate(labels) if labels else np.zeros(0)
    g = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)]) if blocks else y
    return x, y, g


def _folds(articles: list[str], seed: int) -> dict[str, int]:
    order = sorted(set(articles))
    np.random.default_rng(seed).shuffle(order)
    return {a: i % FOLDS for i, a in enumerate(order)}


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rag"], capture_output=True, text=True
        ).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _contexts(golden: Path) -> dict[str, str]:
    """Each question's article (its context file): unanswerable ones have no evidence."""
    out = {}
    for line in golden.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = (row.get("context") or [{"file": ""}])[0]["file"]
    return out


def collect(
    data: Path, settings: Settings, say: Callable[[str], None]
) -> tuple[list[Asked], dict[str, States]]:
    """Ask every question of an index of ``data/corpus`` (and every fourth answerable one
    again without its article); the token states of every retrieved sentence."""
    from rag.answering.sentence_vectors import SentenceVectors
    from rag.runtime import Runtime

    started = time.perf_counter()
    golden = data / "golden.jsonl"
    questions = load_golden(golden)
    contexts = _contexts(golden)
    with tempfile.TemporaryDirectory(prefix="rag-train-") as tmp:
        local = settings.model_copy(
            update={
                "corpus_dir": data / "corpus",
                "index_dir": Path(tmp) / "index",
                "exact_search": True,
                "chroma_url": None,
            }
        )
        runtime = Runtime(local)
        runtime.ingest_service().ingest()
        retriever = runtime.retriever
        reader = Reader(runtime.query_embedder, runtime.lexical, cache=10**6)
        meaning = SentenceVectors(runtime.query_embedder, runtime.lexical)
        files = runtime.lexical.paths()
        say(f"indexed {len(files)} articles in {time.perf_counter() - started:.0f} s")
        items: list[Asked] = []
        answerable_seen = 0
        for n, q in enumerate(questions, start=1):
            article = article_of(q, contexts.get(q.id, ""))
            items.append(ask(q, article, retriever, meaning, reader, None))
            if q.answerable:
                answerable_seen += 1
                if answerable_seen % OFF_CORPUS_EVERY == 0:
                    others = [f for f in files if f != article]
                    items.append(ask(q, article, retriever, meaning, reader, others))
            if n % 500 == 0:
                say(f"asked {n}/{len(questions)} ({time.perf_counter() - started:.0f} s)")
        texts = sorted({s.text for item in items for s in item.sentences})
        states = dict(zip(texts, reader.states(texts), strict=True))
        say(f"{len(texts)} sentences read ({time.perf_counter() - started:.0f} s)")
        return items, states


def train(
    data: Path,
    settings: Settings,
    out: Path = MODEL_DIR,
    seed: int = 0,
    say: Callable[[str], None] = print,
    cache: Path | None = None,
    held_out: HeldOut | None = None,
) -> dict[str, Any]:
    """Fit all four networks on ``data`` (golden.jsonl + corpus/), write them to ``out``.
    ``cache``: keep the asked questions there and reuse them (for experiments on the fit)."""
    started = time.perf_counter()
    commit = _commit()  # the code that trains (before anything else can change it)
    if cache is not None and cache.is_file():
        with cache.open("rb") as fh:
            items, known = pickle.load(fh)
        for item in items:  # features may have changed since
            item.cheap = cheap_rows(item)
    else:
        items, known = collect(data, settings, say)
        if cache is not None:
            with cache.open("wb") as fh:
                pickle.dump((items, known), fh)
    questions = [i for i in items if not i.off_corpus]
    card = {"trained_on": str(data), "training_commit": commit, "seed": seed}
    return fit_all(items, known, len(questions), out, card, say, started, held_out)


def fit_all(
    items: list[Asked],
    known: dict[str, States],
    n_questions: int,
    out: Path,
    card: dict[str, Any],
    say: Callable[[str], None],
    started: float,
    held_out: HeldOut | None = None,
) -> dict[str, Any]:
    """The four networks, fitted on the asked questions, written to ``out`` with ``card``
    (what they were trained on, by which commit, with which seed); ``held_out``: filled with
    the cross-validated scores."""
    seed = int(card["seed"])
    if True:
        fold_of = _folds([i.article for i in items], seed)
        fold = np.asarray([fold_of[i.article] for i in items])
        report: dict[str, Any] = {}

        # 1. the first pass over every pool sentence
        rank_scores: list[np.ndarray] = [np.zeros(0)] * len(items)
        learn = [k for k, i in enumerate(items) if not i.off_corpus]
        labels = [np.asarray([s.positive for s in i.sentences], dtype=float) for i in items]
        for f in [*range(FOLDS), -1]:
            use = [k for k in learn if fold[k] != f]
            x, y, g = _grouped([items[k].cheap for k in use], [labels[k] for k in use])
            model = _fit("rank", x, y, seed, groups=g)
            for k in range(len(items)) if f == -1 else np.flatnonzero(fold == f):
                if f != -1:
                    rank_scores[k] = (
                        model.score(items[k].cheap) if len(items[k].cheap) else np.zeros(0)
                    )
            if f == -1:
                rank_net = model
        say(f"first pass fitted ({time.perf_counter() - started:.0f} s)")

        # 2. candidate sets as AnswerService.read makes them, and the sentences' token states
        reads: list[Read] = []
        for k, item in enumerate(items):
            q = item.question
            kind = (
                "off-corpus"
                if item.off_corpus
                else ("answerable" if q.answerable else "unanswerable")
            )
            sets = [(kind, select(item, rank_scores[k]))]
            if kind == "answerable":
                sets.append(
                    ("evidence removed", select(item, rank_scores[k], lambda s: s.evidence))
                )
            for name, (candidates, words) in sets:
                states = [known[item.sentences[i].text] for i in candidates]
                rows = np.asarray(
                    [
                        sentence_features(
                            item.asked, s.text, s.words, s.cos_context, s.rank, s.score, st
                        )
                        for s, st in zip(
                            (item.sentences[i] for i in candidates), states, strict=True
                        )
                    ],
                    dtype=np.float64,
                ).reshape(len(candidates), -1)
                reads.append(Read(k, name, candidates, words, rows))
        say(f"candidates read ({time.perf_counter() - started:.0f} s)")

        # 2b. the joint reader, fitted without each fold: its outputs are the reader's features
        joint, joint_net = cross_fit(items, known, reads, fold, FOLDS, seed, say)
        column = SENTENCE_FEATURES.index("joint")
        for r in reads:
            for row, i in zip(r.rows, r.candidates, strict=True):
                read = joint.get((r.item, i))
                if read is not None:
                    row[column : column + 2] = (read.sentence, read.span)
        say(f"joint reader fitted ({time.perf_counter() - started:.0f} s)")

        # 3. the reader over the candidates
        reader_scores: list[np.ndarray] = [np.zeros(0)] * len(reads)
        read_fold = np.asarray([fold[r.item] for r in reads])
        learnable = [j for j, r in enumerate(reads) if r.kind == "answerable" and len(r.rows)]

        def read_labels(r: Read) -> np.ndarray:
            return np.asarray(
                [items[r.item].sentences[i].positive for i in r.candidates], dtype=float
            )

        for f in [*range(FOLDS), -1]:
            use = [j for j in learnable if read_fold[j] != f]
            x, y, g = _grouped([reads[j].rows for j in use], [read_labels(reads[j]) for j in use])
            model = _fit("reader", x, y, seed, groups=g)
            if f == -1:
                reader_net = model
                continue
            for held in np.flatnonzero(read_fold == f):
                if len(reads[held].rows):
                    reader_scores[held] = model.score(reads[held].rows)
        say(f"reader fitted ({time.perf_counter() - started:.0f} s)")

        # 4. the lines of a chosen sentence
        line_blocks: list[tuple[int, np.ndarray, np.ndarray]] = []  # fold, rows, labels
        for j in learnable:
            r = reads[j]
            item = items[r.item]
            for i in r.candidates:
                s = item.sentences[i]
                if s.positive and len(s.lines) > 1 and any(s.line_labels):
                    st = known[s.text]
                    found = line_features(
                        item.asked,
                        s.text,
                        st,
                        line_segments(s.text, s.lines),
                        joint.get((r.item, i)),
                    )
                    line_blocks.append(
                        (
                            int(fold[r.item]),
                            np.asarray(found),
                            np.asarray(s.line_labels, dtype=float),
                        )
                    )
        line_hits = []
        for f in [*range(FOLDS), -1]:
            kept = [b for b in line_blocks if b[0] != f]
            x, y, g = _grouped([b[1] for b in kept], [b[2] for b in kept])
            model = _fit("lines", x, y, seed, groups=g)
            if f == -1:
                lines_net = model
                continue
            if held_out is not None:
                held_out.lines[f] = model
            for b in line_blocks:
                if b[0] == f:
                    line_hits.append(bool(b[2][int(np.argmax(model.score(b[1])))]))
        say(f"line chooser fitted ({time.perf_counter() - started:.0f} s)")
        if held_out is not None:
            held_out.items, held_out.states, held_out.fold = items, known, fold
            held_out.reads, held_out.reader_scores = reads, reader_scores
            held_out.joint = joint

        # 5. answerability over the reader's (cross-validated) scores
        qx, qy, qkind, qfold = [], [], [], []
        for j, r in enumerate(reads):
            item = items[r.item]
            order: list[int] = (
                [int(i) for i in np.argsort(-reader_scores[j], kind="stable")]
                if len(r.rows)
                else []
            )
            rank_top = float(rank_scores[r.item][r.candidates[0]]) if r.candidates else 0.0
            qx.append(
                question_features(
                    item.asked,
                    [float(reader_scores[j][i]) for i in order],
                    rank_top,
                    item.best_dense,
                    [list(r.rows[i]) for i in order],
                    r.words,
                )
            )
            qy.append(float(r.kind == "answerable"))
            qkind.append(r.kind)
            qfold.append(read_fold[j])
        ax, ay, afold = np.asarray(qx), np.asarray(qy), np.asarray(qfold)
        kinds = np.asarray(qkind)
        weights = np.ones(len(ay))
        negatives = ["unanswerable", "evidence removed", "off-corpus"]
        for name in negatives:
            mask = kinds == name
            if mask.any():
                weights[mask] = (ay.sum() / len(negatives)) / mask.sum()
        confidence = np.zeros(len(ay))
        for f in [*range(FOLDS), -1]:
            use = afold != f
            model = _fit("answerable", ax[use], ay[use], seed, weights=weights[use])
            if f == -1:
                answer_net = model
                continue
            confidence[afold == f] = 1 / (1 + np.exp(-model.score(ax[afold == f])))
        positives = confidence[kinds == "answerable"]
        threshold = float(np.quantile(positives, WRONGLY_ABSTAINED))
        say(f"answerability fitted ({time.perf_counter() - started:.0f} s)")

        # cross-validated metrics
        flags = [  # is each candidate of an answerable read a positive sentence?
            [bool(items[r.item].sentences[i].positive) for i in r.candidates]
            for r in reads
            if r.kind == "answerable"
        ]
        scores = [reader_scores[j] for j, r in enumerate(reads) if r.kind == "answerable"]
        report = cross_validated(
            n_questions, flags, scores, line_hits, confidence, ay, kinds, threshold, negatives
        )
        say(json.dumps(report, indent=2))
        model_out = ReaderModel(
            {"rank": rank_net, "reader": reader_net, "lines": lines_net, "answerable": answer_net},
            joint_net,
            round(threshold, 4),
            {},
        )
        card = {
            **card,
            "folds": f"{FOLDS} folds by article",
            "architecture": {
                name: (f"MLP, one tanh layer of {HIDDEN[name]}" if HIDDEN[name] else "linear")
                for name in NETS
            },
            "joint": describe(),
            "cross_validated": report,
            "training_seconds": round(time.perf_counter() - started),
        }
        out.mkdir(parents=True, exist_ok=True)
        model_out.save(out, card)
        write_card(out, card, OFF_CORPUS_EVERY, WRONGLY_ABSTAINED)
        assert len(QUESTION_FEATURES) == ax.shape[1] and CHEAP
        return card
