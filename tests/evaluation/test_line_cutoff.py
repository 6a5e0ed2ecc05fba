"""The cutoff on the line chooser's confidence: chosen where narrowing helps citations."""

from __future__ import annotations

from rag.evaluation.line_cutoff import Case, choose, cited, metrics


def test_the_cutoff_narrows_the_sure_choices_and_widens_the_unsure_ones() -> None:
    right = [Case((False, True, False), 1, 0.9, 0)] * 10  # sure, and the right line
    wrong = [Case((True, False, False), 2, 0.5, 0)] * 10  # unsure, wrong, second best right
    one_line = [Case((True,), 0, 1.0)] * 5
    found = right + wrong + one_line
    fallback, cutoff, table = choose(found)
    assert 0.5 < cutoff <= 0.9
    assert cited(right[0], cutoff, fallback) == range(1, 2)
    assert cited(wrong[0], cutoff, "sentence") == range(3)
    assert cited(wrong[0], cutoff, "top2") == range(3)  # lines 2 and 0: the range between
    chosen = metrics(found, cutoff, fallback)
    assert chosen["citation_precision"] == 1.0
    always, never = metrics(found, 0.0), metrics(found, 1.01, "sentence")
    assert always["citation_precision"] < 1.0  # the unsure ones miss
    assert never["citation_line_precision"] < chosen["citation_line_precision"]
    assert chosen["f2"] == max(row["f2"] for row in table) > always["f2"]


def test_the_two_best_lines_are_cited_as_one_range() -> None:
    case = Case((False, True, True, False), 2, 0.6, 1)
    assert cited(case, 0.9, "top2") == range(1, 3)
    assert cited(case, 0.9, "sentence") == range(4)
    assert cited(case, 0.5, "top2") == range(2, 3)
