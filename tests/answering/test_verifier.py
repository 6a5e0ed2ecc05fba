"""The verifier: its window, its checks at load (the cross reader's, with its own file
names), where the answer path takes its window from, and the shipped model telling an
answered question from one its text does not answer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.answering.reader.verifier import (
    META_FILE,
    MODEL_FILE,
    VERIFIER_DIR,
    Verifier,
    window,
    window_around,
)
from rag.errors import ReaderModelError
from rag.runtime import Runtime


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier()


def test_the_window_is_the_sentence_with_its_neighbours() -> None:
    texts = ["A one.", "B two.", "C three.", "D four."]
    assert window(texts, 0) == "A one. B two."
    assert window(texts, 2) == "B two. C three. D four."
    assert window(texts, 3) == "C three. D four."
    assert window(["Alone."], 0) == "Alone."


def test_the_window_is_found_by_line_and_text() -> None:
    from rag.spans import SentenceSpan

    spans = [
        SentenceSpan(1, 1, "Same."),
        SentenceSpan(2, 2, "Same."),
        SentenceSpan(3, 4, "Last one."),
    ]
    assert window_around(spans, 2, "Same.") == "Same. Same. Last one."
    assert window_around(spans, 1, "Same.") == "Same. Same."
    assert window_around(spans, 9, "Elsewhere.") == "Elsewhere."


def test_a_changed_verifier_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "verifier"
    shutil.copytree(VERIFIER_DIR, folder)
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 3] ^= 0xFF
    (folder / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ReaderModelError) as caught:
        Verifier(folder)
    assert MODEL_FILE in caught.value.message and "checksum" in caught.value.message
    assert "make train" in (caught.value.hint or "")
    (folder / META_FILE).unlink()
    with pytest.raises(ReaderModelError, match=META_FILE.replace(".", r"\.")):
        Verifier(folder)


def test_the_verifier_reads_its_own_length(verifier: Verifier) -> None:
    """Windows are longer than sentences: the description's length (not the cross reader's
    128 tokens) cuts them."""
    long = " ".join(["The river flows north through the valley."] * 40)
    encoded = verifier.reader.tokenizer.encode("Where does it flow?", long)
    assert len(encoded.ids) == verifier.meta["max_tokens"] > 128
    assert len(verifier.reader.sessions) == 1  # one window per answer: one copy of the weights


def test_the_answer_path_verifies_the_chosen_sentence_in_its_context(
    corpus_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer asks the verifier once, about the chosen sentence with its neighbours in
    its chunk; a search (passages only) does not ask it."""
    service = corpus_runtime.answer_service
    seen: list[str] = []
    real = service.verifier.score

    def spy(question: str, text: str) -> float:
        seen.append(text)
        return real(question, text)

    monkeypatch.setattr(service.verifier, "score", spy)
    reading = service.read("When did Putin last visit North Korea?")
    best = reading.candidates[0]
    assert len(seen) == 1
    assert best.text in seen[0] and len(seen[0]) > len(best.text) + 20
    assert reading.signals[-1] == real("When did Putin last visit North Korea?", seen[0])
    service.retrieve("When did Putin last visit North Korea?")
    assert len(seen) == 1


def test_the_verifiers_two_threads_give_its_one_thread_scores(verifier: Verifier) -> None:
    """Calibrated on one thread, run on two: the same logits, to the bit."""
    from rag.answering.reader.cross import CrossReader

    one = CrossReader(VERIFIER_DIR, MODEL_FILE, META_FILE, max_sessions=1, threads=1)
    two = CrossReader(VERIFIER_DIR, MODEL_FILE, META_FILE, max_sessions=1, threads=2)
    question = "Which country does Putin visit after North Korea?"
    windows = [
        "Putin arrived in North Korea on Wednesday. After North Korea, Putin is scheduled to "
        "visit Vietnam to discuss trade. He was greeted by Kim Jong Un.",
        "Putin's last visit to North Korea was in July 2000.",
        " ".join(["The Rhine flows from the Swiss Alps to the North Sea."] * 12),
    ]
    for text in windows:
        assert one.read(question, [text])[0].relevance == two.read(question, [text])[0].relevance
