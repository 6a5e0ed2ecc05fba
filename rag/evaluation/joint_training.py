"""Fit the joint reader (:mod:`rag.answering.reader.joint`) in torch over token states: the
same network in batches with padding masks, a pointwise loss per sentence (does it answer
the question: the unanswerable and off-corpus questions' candidates are all negatives) plus a
per-token loss (which tokens are a gold answer), exported to the numpy weights the reader
reads.  Seeded and single-process; torch is only needed here, never at question time."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.answering.reader.features import States
from rag.answering.reader.joint import (
    DIM,
    MAX_QUESTION,
    MAX_TOKENS,
    WIDTH,
    JointNet,
    JointOutput,
)

if TYPE_CHECKING:
    from rag.evaluation.reader_data import Asked, Read

EPOCHS = 4
BATCH = 64
LR = 2e-3
TOKEN_LOSS = 0.5  # weight of the per-token loss beside the sentence loss


@dataclass(frozen=True)
class Pair:
    """A (question, candidate) pair: token states, the sentence label, answer tokens."""

    question: np.ndarray  # question tokens x 384
    candidate: np.ndarray  # candidate tokens x 384
    label: float
    answer_rows: np.ndarray  # candidate token rows inside a gold answer (positives only)


def answer_rows(text: str, answers: Sequence[str], states: States) -> np.ndarray:
    """Token rows of ``text`` covered by an occurrence of a gold answer (case-insensitive)."""
    lower = text.lower()
    rows: list[np.ndarray] = []
    for answer in answers:
        a = answer.strip().lower()
        if not a:
            continue
        start = lower.find(a)
        while start >= 0:
            rows.append(states.within(start, start + len(a)))
            start = lower.find(a, start + 1)
    if not rows:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(rows))


def _module() -> type:
    import torch
    from torch import nn

    class Joint(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.pq = nn.Linear(DIM, WIDTH)
            self.ps = nn.Linear(DIM, WIDTH)
            self.alpha = nn.Parameter(torch.tensor([4.0]))
            self.wu = nn.Linear(WIDTH, 1, bias=False)
            self.w1 = nn.Linear(4 * WIDTH + 2, WIDTH)
            self.conv = nn.Conv1d(WIDTH, WIDTH, 3, padding=1)
            self.wt = nn.Linear(WIDTH, 1)
            self.ws = nn.Linear(3 * WIDTH, 1)

        def forward(self, q, qm, s, sm):  # type: ignore[no-untyped-def]
            neg = -1e9
            cos = s @ q.transpose(1, 2)  # B x ns x nq
            pq, ps = self.pq(q), self.ps(s)
            logits = ps @ pq.transpose(1, 2) / math.sqrt(WIDTH) + self.alpha * cos
            logits = logits.masked_fill(~qm[:, None, :], neg)
            found = torch.softmax(logits, dim=2) @ pq
            weights = self.wu(pq)[:, :, 0].masked_fill(~qm, neg)
            summary = (torch.softmax(weights, dim=1)[:, :, None] * pq).sum(1)  # B x width
            qmf = qm[:, None, :].float()
            cmax = cos.masked_fill(~qm[:, None, :], neg).max(2, keepdim=True).values
            cmean = (cos * qmf).sum(2, keepdim=True) / qmf.sum(2, keepdim=True)
            x = torch.cat([ps, found, ps * found, ps * summary[:, None, :], cmax, cmean], dim=2)
            smf = sm[:, :, None].float()
            h = torch.relu(self.w1(x)) * smf
            h = (h + torch.relu(self.conv(h.transpose(1, 2)).transpose(1, 2))) * smf
            tokens = self.wt(h)[:, :, 0]
            hmax = h.masked_fill(~sm[:, :, None], neg).max(1).values
            hmean = h.sum(1) / smf.sum(1)
            sentence = self.ws(torch.cat([hmax, hmean, summary], dim=1))[:, 0]
            return sentence, tokens

    return Joint


def _batch(pairs: Sequence[Pair]):  # type: ignore[no-untyped-def]
    import torch

    b = len(pairs)
    nq = max(min(len(p.question), MAX_QUESTION) for p in pairs)
    ns = max(min(len(p.candidate), MAX_TOKENS) for p in pairs)
    q = np.zeros((b, nq, DIM), dtype=np.float32)
    s = np.zeros((b, ns, DIM), dtype=np.float32)
    qm = np.zeros((b, nq), dtype=bool)
    sm = np.zeros((b, ns), dtype=bool)
    tok = np.zeros((b, ns), dtype=np.float32)
    for i, p in enumerate(pairs):
        a, c = p.question[:MAX_QUESTION], p.candidate[:MAX_TOKENS]
        q[i, : len(a)], qm[i, : len(a)] = a, True
        s[i, : len(c)], sm[i, : len(c)] = c, True
        rows = p.answer_rows[p.answer_rows < len(c)]
        tok[i, rows] = 1.0
    y = np.asarray([p.label for p in pairs], dtype=np.float32)
    t = torch.from_numpy
    return t(q), t(qm), t(s), t(sm), t(y), t(tok)


def fit(
    pairs: Sequence[Pair],
    seed: int = 0,
    epochs: int = EPOCHS,
    say: Callable[[str], None] = lambda _: None,
) -> JointNet:
    """Fit the network on ``pairs`` (labels balanced by weight), return its numpy weights."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _module()()
    optimiser = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    usable = [p for p in pairs if len(p.question) and len(p.candidate)]
    labels = np.asarray([p.label for p in usable])
    pos_weight = float((1 - labels.mean()) / max(labels.mean(), 1e-6))
    order = np.argsort([len(p.candidate) for p in usable], kind="stable")
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    steps = epochs * len(batches)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LR, total_steps=max(steps, 1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for epoch in range(epochs):
        total = 0.0
        for k in rng.permutation(len(batches)):
            q, qm, s, sm, y, tok = _batch([usable[i] for i in batches[k]])
            sentence, tokens = model(q, qm, s, sm)
            weight = torch.where(y > 0, pos_weight, 1.0)
            loss = bce(sentence, y, weight=weight)
            token_weight = sm.float() * torch.where(tok > 0, 10.0, 1.0)
            loss = loss + TOKEN_LOSS * (
                bce(tokens, tok, weight=token_weight, reduction="sum") / sm.float().sum()
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(y)
        say(f"joint reader epoch {epoch + 1}/{epochs}: loss {total / max(len(usable), 1):.4f}")
    return export(model)


def describe() -> str:
    """The joint reader's architecture and training, for the model card."""
    return (
        "candidate tokens attend over the question's MiniLM token states (width "
        f"{WIDTH}, at most {MAX_TOKENS} candidate tokens), a 3-token convolution, a logit per "
        "token (part of the answer) and per sentence (answers the question); trained in torch "
        f"({EPOCHS} epochs, batch {BATCH}, AdamW, one-cycle lr {LR}, token loss weight "
        f"{TOKEN_LOSS}) on every candidate pair, the unanswerable and off-corpus questions' "
        "candidates as negatives; inference in numpy.  Its outputs are features of the reader, "
        "the line chooser and answerability, each fitted on outputs held out by fold"
    )


def export(model) -> JointNet:  # type: ignore[no-untyped-def]
    """The torch module's weights in the layout :class:`JointNet` reads."""

    def a(t) -> np.ndarray:  # type: ignore[no-untyped-def]
        out: np.ndarray = t.detach().double().numpy().copy()
        return out

    conv = a(model.conv.weight)  # out x in x 3
    return JointNet(
        {
            "pq": a(model.pq.weight).T,
            "bq": a(model.pq.bias),
            "ps": a(model.ps.weight).T,
            "bs": a(model.ps.bias),
            "alpha": a(model.alpha),
            "wu": a(model.wu.weight).T[:, 0],
            "w1": a(model.w1.weight).T,
            "b1": a(model.w1.bias),
            "conv": np.stack([conv[:, :, k].T for k in range(3)]),
            "bconv": a(model.conv.bias),
            "wt": a(model.wt.weight).T,
            "bt": a(model.wt.bias),
            "ws": a(model.ws.weight).T,
            "bsent": a(model.ws.bias),
        }
    )


def pairs_of(
    items: Sequence[Asked], known: dict[str, States], reads: Sequence[Read]
) -> dict[tuple[int, int], Pair]:
    """Every (question, candidate) pair the reader scores, keyed by (asked question, sentence)."""
    out: dict[tuple[int, int], Pair] = {}
    for r in reads:
        item = items[r.item]
        if item.asked.states is None:
            continue
        for i in r.candidates:
            if (r.item, i) in out:
                continue
            s = item.sentences[i]
            st = known[s.text]
            rows = (
                answer_rows(s.text, item.question.answers, st)
                if s.positive
                else np.zeros(0, dtype=np.int64)
            )
            out[(r.item, i)] = Pair(item.asked.states.tokens, st.tokens, float(s.positive), rows)
    return out


def cross_fit(
    items: Sequence[Asked],
    known: dict[str, States],
    reads: Sequence[Read],
    fold: np.ndarray,
    folds: int,
    seed: int,
    say: Callable[[str], None],
) -> tuple[dict[tuple[int, int], JointOutput], JointNet]:
    """The joint reader's output for every pair, each from a network fitted without the pair's
    article's fold, and the network fitted on all of them (the one shipped)."""
    pairs = pairs_of(items, known, reads)
    say(f"joint reader: {len(pairs)} pairs, {int(sum(p.label for p in pairs.values()))} positive")
    held: dict[tuple[int, int], JointOutput] = {}
    final: JointNet | None = None
    for f in [*range(folds), -1]:
        use = [p for (k, _), p in pairs.items() if fold[k] != f]
        net = fit(use, seed=seed, say=say)
        if f == -1:
            final = net
            continue
        by_question: dict[int, list[int]] = {}
        for k, i in pairs:
            if fold[k] == f:
                by_question.setdefault(k, []).append(i)
        for k, sentences in by_question.items():
            outputs = net.read_many(
                pairs[(k, sentences[0])].question, [pairs[(k, i)].candidate for i in sentences]
            )
            held.update({(k, i): o for i, o in zip(sentences, outputs, strict=True)})
        say(f"joint reader: fold {f + 1}/{folds} scored")
    assert final is not None
    return held, final
