"""What a question asks for, and what a candidate text holds that the question does not.

The answer kind comes from the question's wording ("when", "how many", "who", "which
country"...).  A candidate *holds the asked-for thing* when it contains something of that
kind that the question does not already say: "Putin arrived in North Korea on Wednesday"
holds no country beyond the question's own for "Which country does Putin visit after North
Korea?", a line naming Vietnam does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from rag.text import content_words, normalize_word

KINDS = ("time", "number", "person", "place", "entity", "other")

_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fifteen|twenty|"
    "thirty|forty|fifty|sixty|hundred|hundreds|thousand|thousands|million|millions|billion|"
    "dozen|dozens|half|first|second|third"
)
_TIME = re.compile(
    rf"\b(1\d{{3}}|20\d{{2}})s?\b|\b\d{{1,2}}(st|nd|rd|th)? century\b|\b({_MONTHS})\b"
    rf"|\b({_DAYS})\b|\b\d{{1,2}}:\d{{2}}\b|\b(spring|summer|autumn|winter|yesterday|today|"
    rf"tomorrow|decade|centuries|century|bc|ad)\b",
    re.I,
)
_NUMBER = re.compile(rf"\b\d[\d,.]*%?|\b({_NUMBER_WORDS})\b", re.I)
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|von|van|the)?\s*[A-Z][\w'’-]*)*")
_CALENDAR = re.compile(rf"^({_MONTHS}|{_DAYS})$", re.I)
_PLACE_NOUNS = (
    "country|countries|city|cities|state|states|town|region|place|continent|nation|island|"
    "province|capital|location|county|river|village|area|district|border|territory"
)
_PERSON_NOUNS = "person|people|man|woman|king|queen|president|leader|player|composer|author|name"
_KIND_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "time",
        re.compile(
            r"\b(when|what year|which year|what date|what century|what decade|what day|"
            r"what month|what time|what period|what era|how long ago|since when)\b"
        ),
    ),
    (
        "number",
        re.compile(
            r"\b(how many|how much|how long|how far|how old|how large|how big|how tall|how "
            r"high|how often|how fast|how deep|how wide|how heavy|what percentage|what percent|"
            r"what number|what amount|what proportion|what fraction|what rank|what size)\b"
        ),
    ),
    ("person", re.compile(rf"\b(who|whom|whose|(what|which) ({_PERSON_NOUNS}))\b")),
    ("place", re.compile(rf"\b(where|(what|which|in what|in which) ({_PLACE_NOUNS}))\b")),
    (
        "entity",
        re.compile(r"\b(which|what (\w+ )?(is|was|are|were) (the )?name|what \w+ (is|was))\b"),
    ),
]
_WH = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how|in what|in which)\b", re.I)


def answer_kind(question: str) -> str:
    """What kind of answer the question asks for: one of ``KINDS``."""
    lowered = question.lower()
    return next((kind for kind, pattern in _KIND_RULES if pattern.search(lowered)), "other")


def focus_span(question: str) -> tuple[int, int]:
    """Characters of the question that say what is asked: the wh-word and the two words after
    it ("which country does", "how many hours"); the whole question if it has no wh-word."""
    match = _WH.search(question)
    if match is None:
        return 0, len(question)
    rest = re.finditer(r"\S+", question[match.end() :])
    end = match.end()
    for i, word in enumerate(rest):
        if i >= 2:
            break
        end = match.end() + word.end()
    return match.start(), end


@dataclass(frozen=True)
class Question:
    """A question, analysed once per ask."""

    text: str
    kind: str
    words: frozenset[str]  # content words, stemmed
    surface: frozenset[str]  # every word, lower-cased (for "already in the question")

    @classmethod
    def of(cls, text: str) -> Question:
        surface = frozenset(normalize_word(w) for w in re.findall(r"[\w'’-]+", text))
        return cls(text, answer_kind(text), frozenset(content_words(text)), surface)


def _names(text: str) -> list[str]:
    """Capitalised words and runs of them, not at the very start, not months or weekdays."""
    out = []
    for match in _NAME.finditer(text):
        if match.start() == 0:
            rest = match.group(0).split(maxsplit=1)
            if len(rest) < 2:
                continue
            name = rest[1]
        else:
            name = match.group(0)
        if not _CALENDAR.match(name):
            out.append(name)
    return out


def _novel(pieces: Sequence[str], question: Question) -> bool:
    """Does one of ``pieces`` hold a word the question does not?"""
    for piece in pieces:
        for word in re.findall(r"[\w'’-]+", piece):
            if normalize_word(word) not in question.surface:
                return True
    return False


def _new_name(name: str, question: Question) -> bool:
    """A name the question does not use: none of its words is in the question ("Russian
    President Vladimir Putin" is the question's Putin)."""
    return not any(normalize_word(w) in question.surface for w in re.findall(r"[\w'’-]+", name))


@functools.lru_cache(maxsize=16_384)
def _mentions(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The times, numbers and names ``text`` mentions (the same for every question: cached,
    as the sentences of popular passages are read again and again)."""
    times = tuple(m.group(0) for m in _TIME.finditer(text))
    numbers = tuple(m.group(0) for m in _NUMBER.finditer(text))
    return times, numbers, tuple(_names(text))


def typed(text: str, question: Question) -> dict[str, float]:
    """Which kinds of answer ``text`` holds beyond what the question says (1/0 per kind)."""
    times, numbers, names = _mentions(text)
    novel_names = any(_new_name(name, question) for name in names)
    return {
        "time": float(_novel(times, question)),
        "number": float(_novel(numbers, question)),
        "person": float(novel_names),
        "place": float(novel_names),
        "entity": float(novel_names or _novel(numbers, question)),
        "other": 0.0,
    }


def holds_asked(text: str, question: Question, words: AbstractSet[str] | None = None) -> float:
    """Does ``text`` hold something of the asked kind that the question does not say?
    (``words``: the text's content words, when the caller has them.)"""
    if question.kind == "other":
        return float(bool((content_words(text) if words is None else words) - question.words))
    return typed(text, question)[question.kind]
