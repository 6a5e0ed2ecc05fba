"""Checks for eval/golden.jsonl, the hand-made golden questions over data/corpus/.

Fast: reads only the JSONL file and the corpus text, no model is loaded.
"""

from __future__ import annotations

import json
import re
import string
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "eval" / "golden.jsonl"
CORPUS = REPO / "data" / "corpus"

MIN_ANSWERABLE = 40
MIN_UNANSWERABLE = 10

REQUIRED_KEYS: dict[str, type] = {
    "id": str,
    "question": str,
    "answers": list,
    "answerable": bool,
    "evidence": list,
    "context": list,
}
RANGE_KEYS = ("file", "start_line", "end_line")

_PUNCT = set(string.punctuation) | {"\u2019", "\u2018", "\u201c", "\u201d"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _normalize(text: str) -> str:
    """SQuAD answer normalization: lower-case, drop punctuation and articles, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _contains(haystack: str, needle: str) -> bool:
    """Whether normalized ``needle`` occurs in normalized ``haystack`` as whole words."""
    n = _normalize(needle)
    return bool(n) and f" {n} " in f" {_normalize(haystack)} "


@cache
def _file_lines(name: str) -> tuple[str, ...]:
    """The file's lines numbered as `sed -n 'Np'` numbers them: only "\\n" ends a line."""
    text = (CORPUS / name).read_bytes().decode("utf-8-sig")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


def _range_text(rng: dict[str, Any]) -> str:
    lines = _file_lines(rng["file"])
    return "\n".join(lines[rng["start_line"] - 1 : rng["end_line"]])


def _raw_lines() -> list[tuple[int, str]]:
    return [
        (n, line)
        for n, line in enumerate(GOLDEN.read_text(encoding="utf-8").split("\n"), start=1)
        if line.strip()
    ]


def _rows() -> list[dict[str, Any]]:
    """Rows that parse into a JSON object (parse failures are reported by test_line_parses)."""
    rows = []
    for _, line in _raw_lines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


RAW = _raw_lines()
ROWS = _rows()
ROW_IDS = [str(row.get("id", f"row-{i}")) for i, row in enumerate(ROWS)]
ANSWERABLE = [row for row in ROWS if row.get("answerable") is True]
ANSWERABLE_IDS = [str(row.get("id")) for row in ANSWERABLE]
UNANSWERABLE = [row for row in ROWS if row.get("answerable") is False]
UNANSWERABLE_IDS = [str(row.get("id")) for row in UNANSWERABLE]


def test_golden_file_exists_and_not_empty() -> None:
    assert GOLDEN.is_file(), f"missing {GOLDEN}"
    assert RAW, "golden.jsonl is empty"


@pytest.mark.parametrize(("lineno", "line"), RAW, ids=[f"line-{n}" for n, _ in RAW])
def test_line_parses(lineno: int, line: str) -> None:
    row = json.loads(line)
    assert isinstance(row, dict), f"line {lineno} is not a JSON object"


def test_ids_unique() -> None:
    ids = [row.get("id") for row in ROWS]
    dupes = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    assert not dupes, f"duplicate ids: {dupes}"
    assert len(ROWS) == len(RAW), "some lines did not parse into objects"


def _check_range(rng: Any, where: str) -> None:
    assert isinstance(rng, dict), f"{where}: range is not an object: {rng!r}"
    assert set(rng) == set(RANGE_KEYS), f"{where}: range keys {sorted(rng)} != {list(RANGE_KEYS)}"
    name, start, end = rng["file"], rng["start_line"], rng["end_line"]
    assert isinstance(name, str) and name, f"{where}: bad file {name!r}"
    assert "/" not in name and "\\" not in name, f"{where}: file must be a bare name: {name!r}"
    for value in (start, end):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {rng!r}"
    assert (CORPUS / name).is_file(), f"{where}: no such corpus file {name!r}"
    count = len(_file_lines(name))
    assert 1 <= start <= end <= count, f"{where}: {name} {start}-{end} outside 1..{count}"


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_schema(row: dict[str, Any]) -> None:
    for key, typ in REQUIRED_KEYS.items():
        assert key in row, f"missing key {key!r}"
        assert isinstance(row[key], typ), f"{key!r} should be {typ.__name__}: {row[key]!r}"
    assert row["id"].strip(), "empty id"
    assert row["question"].strip(), "empty question"
    for answer in row["answers"]:
        assert isinstance(answer, str) and _normalize(answer), f"bad answer {answer!r}"


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_ranges_valid(row: dict[str, Any]) -> None:
    for key in ("evidence", "context"):
        for i, rng in enumerate(row.get(key, [])):
            _check_range(rng, f"{key}[{i}]")


@pytest.mark.parametrize("row", ANSWERABLE, ids=ANSWERABLE_IDS)
def test_answerable_evidence_holds_answer(row: dict[str, Any]) -> None:
    answers, evidence = row["answers"], row["evidence"]
    assert answers, "answerable question without answers"
    assert evidence, "answerable question without evidence"
    for i, rng in enumerate(evidence):
        _check_range(rng, f"evidence[{i}]")
        text = _range_text(rng)
        assert any(_contains(text, a) for a in answers), (
            f"evidence[{i}] {rng['file']}:{rng['start_line']}-{rng['end_line']} "
            f"contains none of {answers!r}: {text[:200]!r}"
        )


@pytest.mark.parametrize("row", UNANSWERABLE, ids=UNANSWERABLE_IDS)
def test_unanswerable_has_no_answer(row: dict[str, Any]) -> None:
    assert row["answers"] == [], "unanswerable question with answers"
    assert row["evidence"] == [], "unanswerable question with evidence"


def test_counts() -> None:
    assert len(ANSWERABLE) >= MIN_ANSWERABLE, f"only {len(ANSWERABLE)} answerable"
    assert len(UNANSWERABLE) >= MIN_UNANSWERABLE, f"only {len(UNANSWERABLE)} unanswerable"
    assert len(ANSWERABLE) + len(UNANSWERABLE) == len(ROWS), "answerable must be true or false"


def test_every_corpus_file_cited() -> None:
    cited = {rng.get("file") for row in ROWS for rng in row.get("evidence", [])}
    corpus = {p.name for p in CORPUS.glob("*.txt")}
    assert corpus, f"no corpus files in {CORPUS}"
    missing = sorted(corpus - cited)
    assert not missing, f"corpus files never cited by evidence: {missing}"


def test_normalize() -> None:
    assert _normalize("The  Rodong Sinmun’s “paper”.") == "rodong sinmuns paper"
    assert _normalize("An apple, a pear") == "apple pear"
    assert _contains("visited in July 2000, highlighting", "july 2000")
    assert not _contains("in 20001", "2000")
