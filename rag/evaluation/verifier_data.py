"""Training pairs for the verifier (:mod:`rag.answering.reader.verifier`): a question and a
window (a sentence of its paragraph with its neighbours, :func:`window`), labelled 1 when the
window's middle sentence answers it.

- answerable: the answer's sentence (label 1); every ``WRONG_EVERY``-th one also a window
  around the sentence sharing most words with the question at least two sentences away from
  the answer, and not holding it (label 0: the chosen sentence is wrong, nothing answers);
- unanswerable (SQuAD 2.0): the sentence holding the plausible answer a careless reader would
  give (label 0, the hard negative), else the sentence sharing most words with the question.
"""

from __future__ import annotations

from rag.answering.reader.verifier import window
from rag.evaluation.cross_data import Pair, Question, holds_answer
from rag.text import content_words

WRONG_EVERY = 3


def make_verifier_pairs(questions: list[Question]) -> list[Pair]:
    pairs: list[Pair] = []
    answered = 0
    for q in questions:
        texts = [s[2] for s in q.paragraph.sentences]
        if not texts or (q.answerable and q.gold is None):
            continue
        asked = content_words(q.question)

        def overlap(i: int, asked: set[str] = asked, texts: list[str] = texts) -> tuple[int, int]:
            return (-len(asked & content_words(texts[i])), i)

        article = q.paragraph.article
        if q.answerable:
            assert q.gold is not None
            pairs.append(Pair(q.question, window(texts, q.gold), 1, None, article, q.qid, "gold"))
            answered += 1
            if answered % WRONG_EVERY == 0:
                far = [
                    i
                    for i in range(len(texts))
                    if abs(i - q.gold) >= 2 and not holds_answer(window(texts, i), q.answers)
                ]
                if far:
                    i = min(far, key=overlap)
                    pairs.append(
                        Pair(q.question, window(texts, i), 0, None, article, q.qid, "paragraph")
                    )
        else:
            i = q.plausible if q.plausible is not None else min(range(len(texts)), key=overlap)
            kind = "plausible" if q.plausible is not None else "paragraph"
            pairs.append(Pair(q.question, window(texts, i), 0, None, article, q.qid, kind))
    return pairs
