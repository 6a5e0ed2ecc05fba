"""Training pairs for the cross reader, from a SQuAD-style folder (``corpus/`` and
``golden.jsonl`` with ``context``, ``evidence`` and, for unanswerable rows,
``plausible_answers`` / ``plausible_evidence``).

Each question is paired with sentences of its own paragraph, split exactly as the index
splits a chunk (:func:`rag.text.sentences` over the paragraph's lines joined by spaces):
- answerable: the sentence holding the answer (label 1, with the answer's characters in
  it), the paragraph's two sentences sharing most words with the question and one other
  (label 0), and every fourth question one sentence of another paragraph of the same article
  (label 0: the evidence is not there, the topic is);
- unanswerable: the sentence holding the plausible answer a careless reader would give and
  the paragraph's two sentences sharing most words with the question (all label 0).
A negative sentence that holds one of the question's answers is left out (it may answer).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rag.text import content_words, sentences

OTHER_PARAGRAPH_EVERY = 4
DEV_ARTICLES = 6  # articles held out (seeded choice) for the development split


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    label: int  # 1: the sentence answers the question
    span: tuple[int, int] | None  # the answer's characters in the sentence (label 1)
    article: str
    qid: str
    kind: str  # gold | plausible | paragraph | article


@dataclass(frozen=True)
class Paragraph:
    article: str
    start_line: int
    text: str
    line_at: list[int]  # where each line starts in ``text``
    sentences: list[tuple[int, int, str]]  # (start, end, text) in ``text``

    def sentence_at(self, start: int, end: int) -> int | None:
        """The sentence holding characters [start, end), if one sentence does."""
        for i, (s, e, _) in enumerate(self.sentences):
            if s <= start and end <= e:
                return i
        return None

    def line_of(self, offset: int) -> int:
        return self.start_line + max(i for i, at in enumerate(self.line_at) if at <= offset)


@dataclass(frozen=True)
class Question:
    """One golden row with its paragraph and, where found, the answer's sentence and span."""

    qid: str
    question: str
    answerable: bool
    paragraph: Paragraph
    answers: list[str]
    gold: int | None  # index of the sentence holding the answer
    span: tuple[int, int] | None  # the answer's characters in that sentence
    plausible: int | None  # unanswerable: the sentence holding the plausible answer


def _paragraph(lines: list[str], article: str, start: int, end: int) -> Paragraph:
    text, line_at = "", []
    for line in lines[start - 1 : end]:
        if text:
            text += " "
        line_at.append(len(text))
        text += line.strip()
    found = [(s.start, s.end, s.text) for s in sentences(text)]
    return Paragraph(article, start, text, line_at, found)


def _locate(
    paragraph: Paragraph, answers: list[str], lines: set[int]
) -> tuple[int, tuple[int, int]] | None:
    """The sentence and span of the first answer found in the evidence lines (else anywhere)."""
    hits: list[tuple[bool, int, int]] = []
    for answer in (a.strip() for a in answers):
        if not answer:
            continue
        for text, needle in ((paragraph.text, answer), (paragraph.text.lower(), answer.lower())):
            at = text.find(needle)
            while at >= 0:
                hits.append((paragraph.line_of(at) in lines, at, at + len(answer)))
                at = text.find(needle, at + 1)
            if hits:
                break
        if hits:
            break
    for _, start, end in sorted(hits, key=lambda h: (not h[0], h[1])):
        index = paragraph.sentence_at(start, end)
        if index is not None:
            s = paragraph.sentences[index][0]
            return index, (start - s, end - s)
    return None


def load_questions(folder: Path) -> list[Question]:
    """Every row of ``folder/golden.jsonl`` with its paragraph located in ``folder/corpus``."""
    corpus: dict[str, list[str]] = {}
    paragraphs: dict[tuple[str, int, int], Paragraph] = {}
    out: list[Question] = []
    for line in (folder / "golden.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        context = row["context"][0]
        article = str(context["file"])
        if article not in corpus:
            corpus[article] = (folder / "corpus" / article).read_text(encoding="utf-8").split("\n")
        key = (article, int(context["start_line"]), int(context["end_line"]))
        if key not in paragraphs:
            paragraphs[key] = _paragraph(corpus[article], *key)
        paragraph = paragraphs[key]
        answerable = bool(row["answerable"])
        answers = [str(a) for a in row["answers"]]
        gold = span = plausible = None
        if answerable:
            lines = {n for r in row["evidence"] for n in range(r["start_line"], r["end_line"] + 1)}
            found = _locate(paragraph, answers, lines)
            if found is not None:
                gold, span = found
        elif row.get("plausible_answers"):
            lines = {
                n
                for r in row.get("plausible_evidence", [])
                for n in range(r["start_line"], r["end_line"] + 1)
            }
            found = _locate(paragraph, [str(a) for a in row["plausible_answers"]], lines)
            if found is not None:
                plausible = found[0]
        out.append(
            Question(
                str(row["id"]),
                str(row["question"]),
                answerable,
                paragraph,
                answers,
                gold,
                span,
                plausible,
            )
        )
    return out


def dev_articles(questions: list[Question], seed: int) -> set[str]:
    articles = sorted({q.paragraph.article for q in questions})
    return set(random.Random(seed).sample(articles, DEV_ARTICLES))


def holds_answer(text: str, answers: list[str]) -> bool:
    """Does ``text`` hold one of ``answers`` (case aside)?"""
    low = text.lower()
    return any(a.strip() and a.strip().lower() in low for a in answers)


def make_pairs(questions: list[Question], seed: int) -> list[Pair]:
    """The training pairs of ``questions`` (see the module's docstring); seeded."""
    rng = random.Random(seed)
    by_article: dict[str, list[Paragraph]] = defaultdict(list)
    for q in questions:
        if q.paragraph not in by_article[q.paragraph.article]:
            by_article[q.paragraph.article].append(q.paragraph)
    words_of: dict[str, set[str]] = {}

    def words(text: str) -> set[str]:
        if text not in words_of:
            words_of[text] = content_words(text)
        return words_of[text]

    pairs: list[Pair] = []
    answered = 0
    for q in questions:
        if q.answerable and q.gold is None:
            continue  # the answer could not be located in one sentence
        asked = words(q.question)
        sents = q.paragraph.sentences
        keep: list[tuple[int, str]] = []
        if q.answerable:
            assert q.gold is not None
            pairs.append(
                Pair(q.question, sents[q.gold][2], 1, q.span, q.paragraph.article, q.qid, "gold")
            )
            answered += 1
        elif q.plausible is not None:
            keep.append((q.plausible, "plausible"))
        rest = [i for i in range(len(sents)) if i != q.gold and i != q.plausible]
        rest.sort(key=lambda i: (-len(asked & words(sents[i][2])), i))
        keep += [(i, "paragraph") for i in rest[:2]]
        if q.answerable and len(rest) > 2:
            keep.append((rng.choice(rest[2:]), "paragraph"))
        for i, kind in keep:
            text = sents[i][2]
            if q.answerable and holds_answer(text, q.answers):
                continue
            pairs.append(Pair(q.question, text, 0, None, q.paragraph.article, q.qid, kind))
        if q.answerable and answered % OTHER_PARAGRAPH_EVERY == 0:
            others = [
                s[2]
                for p in by_article[q.paragraph.article]
                if p is not q.paragraph
                for s in p.sentences
            ]
            if others:
                best = max(others, key=lambda t: (len(asked & words(t)), -len(t)))
                if not holds_answer(best, q.answers):
                    pairs.append(
                        Pair(q.question, best, 0, None, q.paragraph.article, q.qid, "article")
                    )
    return pairs
