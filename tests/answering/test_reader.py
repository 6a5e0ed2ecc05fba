"""The reader: what a question asks for, features on hand-made cases, the shipped model's
checks, and that answers go through it (sentence choice, cited line, confidence)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from rag.adapters.lexical import LexicalIndex
from rag.answering.reader.analysis import Question, answer_kind, holds_asked
from rag.answering.reader.features import (
    LINE_FEATURES,
    SENTENCE_FEATURES,
    AskedQuestion,
    States,
    line_segments,
    sentence_features,
)
from rag.answering.reader.model import (
    META_FILE,
    MODEL_DIR,
    WEIGHTS_FILE,
    ReaderModel,
    load_model,
)
from rag.answering.reader.net import Net
from rag.answering.reader.read import NARROW_CONFIDENCE, Reader
from rag.errors import ReaderModelError
from rag.text import content_words

VIETNAM_Q = "Which country does Putin visit after North Korea?"
REPEATS = "Putin arrived in North Korea on Wednesday for a two-day visit."
HOLDS = "After North Korea, Putin is scheduled to travel to Vietnam for talks."


def test_answer_kinds() -> None:
    assert answer_kind(VIETNAM_Q) == "place"
    assert answer_kind("When did Putin last visit?") == "time"
    assert answer_kind("How many hours did the talks last?") == "number"
    assert answer_kind("Who greeted Putin at the airport?") == "person"
    assert answer_kind("Why did he go?") == "other"


def test_a_sentence_repeating_the_questions_names_does_not_hold_what_is_asked() -> None:
    q = Question.of(VIETNAM_Q)
    assert holds_asked(REPEATS, q) == 0.0  # North Korea and Putin are the question's own
    assert holds_asked(HOLDS, q) == 1.0  # Vietnam is new
    hours = Question.of("How many hours did the talks between Putin and Kim last?")
    assert holds_asked("Putin and Kim held talks at the palace.", hours) == 0.0
    assert holds_asked("Putin and Kim talked for nine hours.", hours) == 1.0


def _asked(embedder, question: str) -> AskedQuestion:  # type: ignore[no-untyped-def]
    vector, tokens, offsets = embedder.token_states([question])[0]
    return AskedQuestion.of(question, {}, States(vector, tokens, offsets))


def _row(embedder, asked: AskedQuestion, text: str) -> list[float]:  # type: ignore[no-untyped-def]
    vector, tokens, offsets = embedder.token_states([text])[0]
    cos = float(asked.states.vector @ vector) if asked.states is not None else 0.0
    return sentence_features(
        asked, text, frozenset(content_words(text)), cos, 0, 1.0, States(vector, tokens, offsets)
    )


def test_features_see_what_is_asked_not_only_shared_words(embedder) -> None:  # type: ignore[no-untyped-def]
    asked = _asked(embedder, VIETNAM_Q)
    repeats, holds = _row(embedder, asked, REPEATS), _row(embedder, asked, HOLDS)
    col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
    assert repeats[col["holds_asked"]] == 0.0 and holds[col["holds_asked"]] == 1.0
    assert repeats[col["asked_place"]] == 0.0 and holds[col["asked_place"]] == 1.0
    # the question's focus ("which country") meets a token that the question does not hold
    assert holds[col["slot"]] > repeats[col["slot"]]


def test_the_shipped_reader_prefers_the_sentence_holding_what_is_asked(embedder) -> None:  # type: ignore[no-untyped-def]
    model = load_model()
    for question, repeats, holds in [
        (VIETNAM_Q, REPEATS, HOLDS),
        (
            "How many hours did Putin and Kim talk?",
            "Putin and Kim talked in Pyongyang about their ties.",
            "Putin and Kim talked for about nine hours in Pyongyang.",
        ),
        (
            "Who greeted Putin at the airport?",
            "Putin was greeted at the airport after he landed.",
            "At the airport Putin was greeted by Kim Jong Un.",
        ),
    ]:
        asked = _asked(embedder, question)
        scores = model.score(
            "reader", [_row(embedder, asked, repeats), _row(embedder, asked, holds)]
        )
        assert scores[1] > scores[0] + 0.5, question


def test_line_segments_follow_a_wrapped_sentence() -> None:
    lines = ["The first sentence ends here. The second one starts", "and ends on this line."]
    text = "The second one starts and ends on this line."
    (a, b), (c, d) = line_segments(text, lines)
    assert text[a:b] == "The second one starts" and text[c:d] == "and ends on this line."


def _line_chooser(weights: dict[str, float]) -> ReaderModel:
    """The shipped model with a linear line chooser that scores lines by ``weights``."""
    shipped = load_model()
    w2 = np.asarray([[weights.get(name, 0.0)] for name in LINE_FEATURES])
    n = len(LINE_FEATURES)
    lines = Net(np.zeros(n), np.ones(n), np.zeros((0, 0)), np.zeros(0), w2, np.zeros(1))
    return replace(shipped, nets={**shipped.nets, "lines": lines})


def test_the_citation_narrows_to_one_line_only_when_the_line_chooser_is_sure(embedder) -> None:  # type: ignore[no-untyped-def]
    lines = ["After North Korea, Putin is", "scheduled to travel to Vietnam", "for talks", "soon."]
    text = " ".join(lines)
    asked = _asked(embedder, VIETNAM_Q)
    lexical = cast(LexicalIndex, None)  # only asking a question reads the index
    sure = Reader(embedder, lexical, _line_chooser({"last": 20.0}))  # the last line, p ~ 1
    assert sure.best_lines(asked, text, lines) == (3, 3)
    # unsure (p 0.32 for line 3, 0.29 for line 0): the range of its two best lines
    unsure = Reader(embedder, lexical, _line_chooser({"last": 0.3, "first": 0.2}))
    assert unsure.best_lines(asked, text, lines) == (0, 3)
    assert unsure.best_lines(asked, text, lines, narrow_at=0.0) == (3, 3)
    # unsure between lines 0 (p 0.50) and 1; line 2 (p 0.14) stays out of the citation
    leaning = Reader(embedder, lexical, _line_chooser({"first": 0.3, "last": -1.0}))
    assert leaning.best_lines(asked, text, lines[:3]) == (0, 1)
    assert 0.5 < NARROW_CONFIDENCE < 0.99  # the shipped cutoff: well above a guess, below certain


def _copy_model(tmp_path: Path) -> Path:
    folder = tmp_path / "reader"
    folder.mkdir()
    for name in (WEIGHTS_FILE, META_FILE):
        shutil.copy(MODEL_DIR / name, folder / name)
    return folder


def test_the_shipped_model_loads_and_is_checked(tmp_path: Path) -> None:
    model = load_model(_copy_model(tmp_path))
    assert 0.0 < model.threshold < 1.0
    assert model.meta["sha256"] and "training_commit" in model.meta


def test_an_altered_model_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = _copy_model(tmp_path)
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-100] ^= 0xFF
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ReaderModelError, match="checksum") as error:
        load_model(folder)
    assert "make train" in error.value.hint


def test_a_model_for_other_features_or_format_is_refused(tmp_path: Path) -> None:
    folder = _copy_model(tmp_path)
    meta = json.loads((folder / META_FILE).read_text())
    meta["features"]["reader"] = meta["features"]["reader"][:-1]
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ReaderModelError, match="other features"):
        load_model(folder)
    meta = json.loads((MODEL_DIR / META_FILE).read_text())
    meta["format"] = "rag-reader/0"
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ReaderModelError, match="format"):
        load_model(folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ReaderModelError, match="missing"):
        load_model(folder)


def test_answers_go_through_the_reader(corpus_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The chosen sentence is the reader's best, its cited line the line model's, and the
    confidence the answerability model's: a reader that says otherwise changes the answer."""
    service = corpus_runtime.answer_service
    question = "Who greeted Putin at the airport in Pyongyang?"
    answer = service.ask(question, backend="extractive")
    assert not answer.abstained and "Kim Jong Un" in answer.answer
    assert all("Kim Jong Un" in c.quote for c in answer.citations)
    reading = service.read(question)
    assert answer.confidence == reading.confidence

    model = service.reader.model
    flipped = {**model.nets}
    net = flipped["reader"]
    flipped["reader"] = type(net)(net.mean, net.scale, net.w1, net.b1, -net.w2, -net.b2)
    nets = replace(model, nets=flipped)
    monkeypatch.setattr(service.reader, "_model", nets)
    worst = service.read(question).candidates[0]
    assert worst.text != reading.candidates[0].text  # the reader's score decides

    monkeypatch.setattr(service.reader, "_model", model)
    assert service.calibration is not None  # the cross reader's calibration sets the threshold
    sure = replace(service.calibration, threshold=1.0)  # nothing reaches this confidence
    monkeypatch.setattr(service, "calibration", sure)
    assert service.ask(question, backend="extractive").abstained


@pytest.mark.parametrize("which", ["embedder", "torch_embedder"])
def test_token_states_come_with_the_texts_vector_and_character_ranges(which, request) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    model = request.getfixturevalue(which)
    text = "Putin flew on to Vietnam."
    ((vector, tokens, offsets),) = model.token_states([text])
    assert np.allclose(vector, model.encode([text])[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(tokens, axis=1), 1.0, atol=1e-5)
    assert len(tokens) == len(offsets) and text[offsets[4][0] : offsets[4][1]] == "Vietnam"


def test_token_states_of_several_texts_are_those_of_each_alone(embedder) -> None:  # type: ignore[no-untyped-def]
    """Several texts run side by side on the per-core sessions; each text's numbers are
    bit for bit those of its run alone on the question's session."""
    import numpy as np

    texts = [f"Sentence {n}: Putin met Kim in Pyongyang on day {n}." for n in range(7)]
    together = embedder.token_states(texts)
    for text, (vector, tokens, offsets) in zip(texts, together, strict=True):
        ((alone_vector, alone_tokens, alone_offsets),) = embedder.token_states([text])
        assert np.array_equal(vector, alone_vector)
        assert np.array_equal(tokens, alone_tokens)
        assert np.array_equal(offsets, alone_offsets)
        assert np.array_equal(vector, embedder.encode_query(text))
