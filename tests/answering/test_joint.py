"""The joint reader: numpy inference equals the torch network it was trained as, answer
tokens are labelled where the gold answer is, and the reader's features carry its output."""

from __future__ import annotations

import re
from typing import cast

import numpy as np
import pytest

from rag.adapters.lexical import LexicalIndex
from rag.answering.reader.features import SENTENCE_FEATURES, AskedQuestion, States
from rag.answering.reader.joint import MAX_TOKENS
from rag.answering.reader.read import Item, Reader
from rag.evaluation.joint_training import Pair, _batch, _module, answer_rows, export

torch = pytest.importorskip("torch")


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 384))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_numpy_inference_equals_the_trained_torch_network() -> None:
    rng = np.random.default_rng(0)
    lengths = [(3, 5), (11, 40), (7, 1), (20, MAX_TOKENS + 10)]  # padding, one token, a cut
    pairs = [Pair(_unit(rng, q), _unit(rng, s), 1.0, np.zeros(0, int)) for q, s in lengths]
    torch.manual_seed(0)
    model = _module()()
    with torch.no_grad():
        for p in model.parameters():  # away from the initialisation, so every weight matters
            p.add_(torch.randn_like(p) * 0.2)
        q, qm, s, sm, _, _ = _batch(pairs)
        sentence, tokens = model(q, qm, s, sm)
    net = export(model)
    for i, pair in enumerate(pairs):
        out = net.read(pair.question, pair.candidate)
        n = min(len(pair.candidate), MAX_TOKENS)
        assert len(out.tokens) == n
        assert out.sentence == pytest.approx(float(sentence[i]), abs=1e-4)
        assert np.abs(out.tokens - tokens[i, :n].numpy()).max() < 1e-4
        assert out.span == pytest.approx(float(tokens[i, :n].max()), abs=1e-4)
    # several candidates of one question at once: the same outputs
    same_question = [Pair(pairs[0].question, p.candidate, 1.0, p.answer_rows) for p in pairs]
    q, qm, s, sm, _, _ = _batch(same_question)
    with torch.no_grad():
        sentence, tokens = model(q, qm, s, sm)
    many = net.read_many(pairs[0].question, [p.candidate for p in pairs] + [np.zeros((0, 384))])
    assert len(many) == len(pairs) + 1 and len(many[-1].tokens) == 0
    for i, out in enumerate(many[:-1]):
        n = len(out.tokens)
        assert out.sentence == pytest.approx(float(sentence[i]), abs=1e-4)
        assert np.abs(out.tokens - tokens[i, :n].numpy()).max() < 1e-4
    # a wrong export (the convolution's taps swapped) is caught
    swapped = dict(net.weights)
    swapped["conv"] = swapped["conv"][::-1]
    bad = type(net)(swapped).read(pairs[1].question, pairs[1].candidate)
    assert np.abs(bad.tokens - tokens[1, :40].numpy()).max() > 1e-3


def test_answer_tokens_are_where_the_gold_answer_is() -> None:
    text = "Putin will travel to Vietnam next, and Vietnam welcomes him."
    # one token per word, by character ranges
    offsets = np.asarray([[m.start(), m.end()] for m in re.finditer(r"\w+", text)])
    states = States(np.zeros(384), np.zeros((len(offsets), 384)), offsets)
    rows = answer_rows(text, ["vietnam", "  "], states)
    words = [text[a:b] for a, b in offsets[rows]]
    assert words == ["Vietnam", "Vietnam"]
    assert len(answer_rows(text, ["Laos"], states)) == 0


def test_the_reader_features_carry_the_joint_readers_output(embedder) -> None:  # type: ignore[no-untyped-def]
    reader = Reader(embedder, cast(LexicalIndex, None))
    question = "Which country does Putin visit after North Korea?"
    asked = AskedQuestion.of(question, {}, States(*embedder.token_states([question])[0]))
    texts = [
        "Putin arrived in North Korea on Wednesday.",
        "After North Korea, Putin travels to Vietnam.",
    ]
    items = [Item(t, frozenset(t.lower().split()), 0.5, 0, 1.0) for t in texts]
    _, rows, states, joint = reader.second_pass(asked, items)
    column = SENTENCE_FEATURES.index("joint")
    for row, st, given in zip(rows, states, joint, strict=True):
        out = reader.model.joint.read(asked.states.tokens, st.tokens)  # type: ignore[union-attr]
        assert row[column] == pytest.approx(out.sentence)
        assert row[column + 1] == pytest.approx(out.span)
        assert given is not None and given.sentence == pytest.approx(out.sentence)
    # what it reads matters: the sentence naming the country asked for is rated higher
    assert rows[1][column] > rows[0][column] + 0.5
