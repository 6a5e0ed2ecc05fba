"""`rag eval --drop`: files left out of the index make their questions off-corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import InputError
from rag.evaluation.golden import GoldenQuestion
from rag.evaluation.metrics import Range
from rag.evaluation.runner import _without, off_corpus


def _q(*files: str) -> GoldenQuestion:
    return GoldenQuestion("q", "Who?", ["A"], True, [Range(f, 1, 1) for f in files])


def test_a_question_is_off_corpus_only_when_all_its_evidence_is_dropped() -> None:
    gone = off_corpus(_q("a.txt"), ("a.txt",))
    assert not gone.answerable and gone.answers == [] and gone.evidence == []
    assert off_corpus(_q("a.txt", "b.txt"), ("a.txt",)).answerable  # b.txt still says it
    assert off_corpus(_q("b.txt"), ("a.txt",)).answerable


def test_the_index_is_built_without_the_dropped_files(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (corpus / name).write_text("text\n")
    copy = _without(corpus, ("a.txt", "sub/c.txt"), tmp_path / "copy")
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*.txt")) == ["b.txt"]
    with pytest.raises(InputError, match=r"nope\.txt"):
        _without(corpus, ("nope.txt",), tmp_path / "again")
