"""The cross reader: its checks at load, the short-answer span, the lines that hold it, the
answerability fit, and its training's resumption (the shipped model's behaviour on whole
questions is in test_answer.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.answering.cross_read import Calibration, span_lines
from rag.answering.reader.cross import (
    CROSS_DIR,
    MAX_SPAN_TOKENS,
    META_FILE,
    MODEL_FILE,
    CrossReader,
    best_span,
    encode_pair,
)
from rag.answering.reader.verifier import VERIFIER_DIR, Verifier
from rag.errors import ReaderModelError


@pytest.fixture(scope="module")
def cross() -> CrossReader:
    return CrossReader()


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "cross"
    shutil.copytree(CROSS_DIR, folder)
    return folder


def test_a_changed_model_file_is_refused_with_the_command_that_rebuilds_it(
    tmp_path: Path,
) -> None:
    folder = _copy(tmp_path)
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ReaderModelError) as caught:
        CrossReader(folder)
    assert "does not match its checksum" in caught.value.message
    assert "make train" in (caught.value.hint or "")


@pytest.mark.parametrize("missing", [MODEL_FILE, META_FILE, "tokenizer.json"])
def test_a_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    folder = _copy(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(ReaderModelError, match=missing.replace(".", r"\.")):
        CrossReader(folder)


def test_a_description_of_another_format_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / META_FILE).write_text('{"format": "rag-cross-reader/0"}', encoding="utf-8")
    with pytest.raises(ReaderModelError, match="format"):
        CrossReader(folder)


def test_the_span_is_the_best_start_and_end_inside_the_sentence(cross: CrossReader) -> None:
    sentence = "Putin last visited North Korea in July 2000."
    encoded = encode_pair(cross.tokenizer, "When did Putin last visit?", sentence)
    where = np.flatnonzero(encoded.sentence)
    tokens = [sentence[a:b] for a, b in encoded.offsets[where]]
    start = np.zeros(len(encoded.ids))
    end = np.zeros(len(encoded.ids))
    start[0] = end[0] = 50.0  # [CLS]: never an answer, however high
    start[where[tokens.index("July")]] = 5.0
    end[where[tokens.index("2000")]] = 5.0
    end[where[tokens.index("visited")]] = 9.0  # before the start: not a span
    span, score = best_span(encoded, start, end)
    assert span is not None and sentence[span[0] : span[1]] == "July 2000"
    assert score == 10.0


def test_a_span_is_never_longer_than_the_limit(cross: CrossReader) -> None:
    sentence = " ".join(f"w{i}" for i in range(60))
    encoded = encode_pair(cross.tokenizer, "q?", sentence)
    where = np.flatnonzero(encoded.sentence)
    start = np.zeros(len(encoded.ids))
    end = np.zeros(len(encoded.ids))
    start[where[0]], end[where[-1]] = 5.0, 5.0
    span, _ = best_span(encoded, start, end)
    assert span is not None
    first = int(np.searchsorted(encoded.offsets[where, 0], span[0]))
    last = int(np.searchsorted(encoded.offsets[where, 1], span[1]))
    assert last - first < MAX_SPAN_TOKENS


def test_span_lines_finds_the_line_of_a_wrapped_sentence() -> None:
    lines = ["The talks began early. Putin's last visit", "to North Korea was in July", "2000."]
    text = "Putin's last visit to North Korea was in July 2000."
    at = text.index("July 2000")
    assert span_lines(text, lines, (at, at + len("July 2000"))) == (1, 2)
    at = text.index("North Korea")
    assert span_lines(text, lines, (at, at + len("North Korea"))) == (1, 1)
    at = text.index("visit")
    assert span_lines(text, lines, (at, at + 5)) == (0, 0)
    assert span_lines("not there", lines, (0, 3)) is None


def test_the_shipped_reader_reads_a_date_out_of_its_sentence(cross: CrossReader) -> None:
    question = "When did Putin last visit North Korea?"
    good = "Putin's last visit to North Korea was in July 2000."
    off = "The Rhine flows from the Swiss Alps to the North Sea."
    out = cross.read(question, [good, off])
    assert out[0].relevance > out[1].relevance + 2
    span = out[0].span
    assert span is not None and "2000" in good[span[0] : span[1]]


def test_the_shipped_calibration_is_read() -> None:
    calibration = Calibration.of(CrossReader().meta)
    assert calibration is not None and 0 < calibration.threshold < 1
    assert calibration.confidence([0.0, -8.0, 0.0, 0.0, -8.0]) < calibration.threshold


def test_the_shipped_calibration_was_fitted_reading_as_many_sentences_as_the_answer_path() -> None:
    """The best relevance and its margin are taken over the sentences the cross reader
    reads: a calibration fitted with another number reads other features."""
    from rag.answering.cross_read import CROSS_READ

    assert CrossReader().meta["answerability"]["cross_read"] == CROSS_READ


def test_the_answerability_fit_recovers_a_known_logistic() -> None:
    from rag.evaluation.cross_calibrate import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    truth = np.array([1.5, -0.7, 2.0])
    p = 1 / (1 + np.exp(-(x @ truth + 0.3)))
    y = (rng.random(4000) < p).astype(float)
    weights, bias = fit_logistic(x, y)
    assert np.allclose(weights, truth, atol=0.25) and abs(bias - 0.3) < 0.25


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """A second run with the same data and settings continues from the checkpoint (here:
    the finished one, so it trains no more and gives the same weights); other settings
    start over."""
    import torch

    from rag.evaluation.cross_data import Pair
    from rag.evaluation.cross_training import TrainConfig, train

    pairs = [
        Pair("When was it?", "It was in July 2000.", 1, (10, 19), "a", "q1", "gold"),
        Pair("When was it?", "The sky is blue.", 0, None, "a", "q1", "paragraph"),
        Pair("Who came?", "Lavrov came along.", 1, (0, 6), "a", "q2", "gold"),
        Pair("Who came?", "Nothing happened.", 0, None, "a", "q2", "paragraph"),
    ]
    config = TrainConfig(batch=2, epochs=1.0)
    first = train(pairs, tmp_path, config)
    assert (tmp_path / "checkpoint.pt").is_file()
    again = train(pairs, tmp_path, config)
    # the resumed run's time includes the first run's (the model card reports the sum)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["seconds"]
    assert saved > 0 and again.train_seconds >= saved
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = train(pairs, tmp_path, TrainConfig(batch=2, epochs=1.0, lr=1e-4))
    assert not torch.equal(first.relevance.weight, other.relevance.weight)


def test_scores_do_not_depend_on_the_session_or_the_neighbours(cross: CrossReader) -> None:
    """Pairs run side by side on one-thread sessions: each pair's outputs are those it gets
    alone on any of them."""
    question = "When did Putin last visit North Korea?"
    sentences = [
        "Putin's last visit to North Korea was in July 2000.",
        "The Rhine flows from the Swiss Alps to the North Sea.",
        "He was greeted at Pyongyang's airport by North Korean leader Kim Jong Un.",
    ]
    together = cross.read(question, sentences)
    for i, sentence in enumerate(sentences):
        encoded = encode_pair(cross.tokenizer, question, sentence)
        for session in cross.sessions:
            relevance, _, _ = cross.run(encoded, session)
            assert relevance == together[i].relevance
        assert cross.read(question, [sentence])[0] == together[i]


def test_calibration_reads_with_the_model_it_calibrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer path asked during calibration reads with the newly trained models (in
    their staging folders), not the shipped ones."""
    from rag.config import Settings
    from rag.evaluation import cross_calibrate

    model = _copy(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "Putin's last visit to North Korea was in July 2000.\nThe sky was blue that day.\n",
        encoding="utf-8",
    )
    seen: list[Path] = []

    class Spy(CrossReader):
        def __init__(self, folder: Path = CROSS_DIR) -> None:
            seen.append(folder)
            super().__init__(folder)

    class VerifierSpy(Verifier):
        def __init__(self, folder: Path = VERIFIER_DIR) -> None:
            seen.append(folder)
            super().__init__(folder)

    verifier = tmp_path / "verifier"
    shutil.copytree(VERIFIER_DIR, verifier)
    monkeypatch.setattr(cross_calibrate, "CrossReader", Spy)
    monkeypatch.setattr(cross_calibrate, "Verifier", VerifierSpy)
    row = {
        "question": "When did Putin last visit North Korea?",
        "evidence": [{"file": "a.txt", "start_line": 1, "end_line": 1}],
    }
    settings = Settings(models_dir=Path(__file__).parents[2] / "data" / "models")
    asked = cross_calibrate._ask_all(
        settings, corpus, model, [(row, "answerable")], print, verifier
    )
    assert seen == [model, verifier]
    assert len(asked) == 1 and asked[0].gold[0] and asked[0].label == 1


def test_training_can_start_from_another_runs_weights(tmp_path: Path) -> None:
    """The verifier starts from the cross reader's finished checkpoint: with nothing to
    learn (learning rate 0) it keeps those weights exactly; without a start it has the
    packaged weights and a new head."""
    import torch

    from rag.evaluation.cross_data import Pair
    from rag.evaluation.cross_training import TrainConfig, train

    pairs = [
        Pair("When was it?", "It was in July 2000.", 1, (10, 19), "a", "q1", "gold"),
        Pair("When was it?", "The sky is blue.", 0, None, "a", "q1", "paragraph"),
    ]
    first = train(pairs, tmp_path / "a", TrainConfig(batch=2, epochs=1.0))
    frozen = TrainConfig(batch=2, epochs=1.0, lr=0.0, head_lr=0.0)
    start = tmp_path / "a" / "checkpoint.pt"
    started = train(pairs, tmp_path / "b", frozen, start=start, max_tokens=64)
    for (name, a), b in zip(first.state_dict().items(), started.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    fresh = train(pairs, tmp_path / "c", frozen)
    assert not torch.equal(first.relevance.weight, fresh.relevance.weight)


def test_a_model_is_written_beside_and_moved_into_place_only_when_whole(tmp_path: Path) -> None:
    from rag.evaluation.cross_training import staged

    out = tmp_path / "cross"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), staged(out, ".cross-") as staging:
        (staging / "half.txt").write_text("half", encoding="utf-8")
        raise RuntimeError("calibration failed")
    assert [p.name for p in tmp_path.iterdir()] == ["cross"]  # no staging folder left
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with staged(out, ".cross-") as staging:
        (staging / "new.txt").write_text("new", encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["cross"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]
