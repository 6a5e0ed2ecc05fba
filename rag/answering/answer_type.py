"""What kind of answer a question asks for (a time, a number, a name), and how clearly a
sentence holds one: rules used to score sentences as answers."""

from __future__ import annotations

import re

_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
# A time an answer can name: a year, a day of a month, a century (a bare month is weaker).
_TIME = re.compile(
    rf"\b(1\d{{3}}|20\d{{2}})s?\b|\b\d{{1,2}}(st|nd|rd|th)? century\b"
    rf"|\b({_MONTHS})\s+\d{{1,2}}\b|\b\d{{1,2}}\s+({_MONTHS})\b",
    re.I,
)
_MONTH = re.compile(rf"\b({_MONTHS})\b", re.I)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|dozen|half)\b",
    re.I,
)
_NAME = re.compile(r"\b[A-Z][a-z]+")
_QUESTION_TYPES = [
    ("time", re.compile(r"\b(when|what year|which year|what date|what century|what decade)\b")),
    (
        "number",
        re.compile(
            r"\b(how many|how much|how long|how far|how old|how large|how big|how tall|"
            r"how high|what percentage|what percent)\b"
        ),
    ),
    ("name", re.compile(r"\b(who|whom|whose|where)\b")),
]


def answer_type(question: str) -> str | None:
    """What kind of answer the question asks for: time, number, name, or None."""
    lowered = question.lower()
    return next((kind for kind, pattern in _QUESTION_TYPES if pattern.search(lowered)), None)


def answer_type_match(kind: str | None, sentence: str, question: str) -> float:
    """How clearly ``sentence`` holds something of the asked kind: 1, 0.5 (a bare month for
    "when") or 0; names must be ones the question does not already use."""
    if kind == "time":
        return 1.0 if _TIME.search(sentence) else 0.5 if _MONTH.search(sentence) else 0.0
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    if kind == "name":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        names = _NAME.findall(sentence[1:])  # a capital at the very start proves nothing
        return 1.0 if any(n.lower() not in asked for n in names) else 0.0
    return 0.0
