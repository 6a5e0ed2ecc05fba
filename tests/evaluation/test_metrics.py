"""Unit tests for rag.evaluation.metrics on small cases computed by hand."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.evaluation.metrics import (
    CitationScore,
    Range,
    abstention_scores,
    aggregate_citations,
    auroc,
    citation_scores,
    contains_answer,
    exact_match,
    hit_rank,
    mrr,
    normalize_answer,
    percentile,
    recall_at_k,
    token_f1,
)

# --------------------------------------------------------------------------- normalize_answer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # lower -> "the cat's  hat!" ; punct -> "the cats  hat" ; article -> " cats  hat"
        ("The Cat's  hat!", "cats hat"),
        # curly quotes ’ “ ” and em dash — and ellipsis … are Unicode punctuation (P*)
        ("“Don’t” — said Ann…", "dont said ann"),
        # ‘single’ curly quotes and guillemets « » and inverted ¿
        ("‘Quoted’ «word» ¿Qué?", "quoted word qué"),
        # all three articles go, but only as whole words: "theater", "another" stay
        ("An apple a day at the theater, another", "apple day at theater another"),
        # ASCII symbols in string.punctuation ($ + =) are deleted as in SQuAD
        ("$5 + 3 = 8", "5 3 8"),
        # punctuation is deleted, not replaced by a space
        ("1,000.5", "10005"),
        ("  \tMixed\nCase  ", "mixed case"),
        ("A", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


# --------------------------------------------------------------------------- exact_match


def test_exact_match_after_normalization() -> None:
    # "The Eiffel Tower." -> "eiffel tower" == "eiffel tower"
    assert exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0


def test_exact_match_any_gold() -> None:
    # second gold "PARIS!" -> "paris"
    assert exact_match("paris", ["London", "PARIS!"]) == 1.0


def test_exact_match_partial_is_zero() -> None:
    assert exact_match("Eiffel", ["eiffel tower", "Paris"]) == 0.0


def test_exact_match_no_golds() -> None:
    assert exact_match("anything", []) == 0.0


def test_exact_match_both_normalize_to_empty() -> None:
    # "the" -> "" and "a" -> "": equal strings
    assert exact_match("the", ["a"]) == 1.0


# --------------------------------------------------------------------------- token_f1


def test_token_f1_partial_overlap() -> None:
    # pred tokens [cat, sat, on, mat] (4), gold tokens [cat, on, mat] (3), overlap 3
    # P = 3/4, R = 3/3 = 1, F1 = 2 * 3/4 * 1 / (3/4 + 1) = (3/2) / (7/4) = 6/7
    assert token_f1("the cat sat on the mat", ["a cat on a mat"]) == pytest.approx(6 / 7, abs=1e-12)


def test_token_f1_counts_multiset_overlap() -> None:
    # pred [x, x, x, y], gold [x, y, y]: overlap = min(3,1) + min(1,2) = 2
    # P = 2/4 = 1/2, R = 2/3, F1 = 2 * 1/2 * 2/3 / (1/2 + 2/3) = (2/3) / (7/6) = 4/7
    assert token_f1("x x x y", ["x y y"]) == pytest.approx(4 / 7, abs=1e-12)


def test_token_f1_takes_best_gold() -> None:
    # vs "blue car": overlap 1 (car), P = 1/2, R = 1/2, F1 = 1/2
    # vs "red truck big": overlap 1 (red), P = 1/2, R = 1/3, F1 = (1/3) / (5/6) = 2/5
    # max(1/2, 2/5) = 1/2
    assert token_f1("red car", ["blue car", "red truck big"]) == 0.5
    assert token_f1("red car", ["blue car", "Red car."]) == 1.0


def test_token_f1_no_overlap() -> None:
    assert token_f1("green", ["blue car"]) == 0.0


def test_token_f1_empty_cases() -> None:
    assert token_f1("anything", []) == 0.0
    # empty prediction vs non-empty gold, and the reverse
    assert token_f1("", ["blue"]) == 0.0
    assert token_f1("blue", ["The."]) == 0.0
    # both normalize to no tokens: agree (SQuAD v2)
    assert token_f1("The", ["a"]) == 1.0


# --------------------------------------------------------------------------- contains_answer


def test_contains_answer_whole_tokens() -> None:
    # "In July 2000." -> tokens [in, july, 2000]
    assert contains_answer("In July 2000.", ["2000"]) == 1.0
    assert contains_answer("In July 2000.", ["200"]) == 0.0
    assert contains_answer("In July 2000.", ["july 2000"]) == 1.0
    # "July, 2000" -> "july 2000"
    assert contains_answer("In July 2000.", ["July, 2000"]) == 1.0


def test_contains_answer_needs_contiguous_order() -> None:
    assert contains_answer("In July 2000.", ["2000 july"]) == 0.0
    assert contains_answer("In July 2000.", ["in 2000"]) == 0.0


def test_contains_answer_any_gold() -> None:
    assert contains_answer("In July 2000.", ["Paris", "in July"]) == 1.0


def test_contains_answer_gold_longer_than_prediction() -> None:
    assert contains_answer("2000", ["july 2000"]) == 0.0


def test_contains_answer_empty_cases() -> None:
    assert contains_answer("In July 2000.", []) == 0.0
    # a gold with no tokens never matches
    assert contains_answer("In July 2000.", ["The."]) == 0.0
    assert contains_answer("", [""]) == 0.0


# --------------------------------------------------------------------------- Range


def test_range_overlaps() -> None:
    a = Range("a.py", 1, 3)
    assert a.overlaps(Range("a.py", 3, 5))  # share line 3
    assert Range("a.py", 3, 5).overlaps(a)
    assert not a.overlaps(Range("a.py", 4, 5))  # adjacent, no shared line
    assert not a.overlaps(Range("b.py", 1, 3))  # other file
    assert not a.overlaps(Range("src/a.py", 1, 3))  # paths compared exactly
    assert Range("a.py", 1, 10).overlaps(Range("a.py", 4, 5))  # containment
    assert Range("a.py", 4, 5).overlaps(Range("a.py", 1, 10))
    assert a.overlaps(a)


def test_range_lines() -> None:
    assert Range("a.py", 2, 4).lines() == {("a.py", 2), ("a.py", 3), ("a.py", 4)}
    assert Range("a.py", 7, 7).lines() == {("a.py", 7)}


def test_range_validation() -> None:
    with pytest.raises(ValueError):
        Range("a.py", 0, 3)
    with pytest.raises(ValueError):
        Range("a.py", 5, 4)


def test_range_is_frozen() -> None:
    r = Range("a.py", 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.start_line = 3  # type: ignore[misc]
    assert r == Range("a.py", 1, 2)
    assert len({r, Range("a.py", 1, 2)}) == 1


# --------------------------------------------------------------------------- retrieval

RETRIEVED = [
    Range("a.py", 1, 5),  # rank 1
    Range("b.py", 1, 5),  # rank 2
    Range("a.py", 10, 20),  # rank 3
    Range("b.py", 30, 40),  # rank 4
]


def test_hit_rank_first_overlap() -> None:
    # only rank 3 (a.py 10-20) and nothing earlier touches a.py 18-25
    assert hit_rank(RETRIEVED, [Range("a.py", 18, 25)]) == 3


def test_hit_rank_any_evidence_range() -> None:
    # b.py 4-4 is hit at rank 2, earlier than a.py 18-25 at rank 3
    assert hit_rank(RETRIEVED, [Range("a.py", 18, 25), Range("b.py", 4, 4)]) == 2


def test_hit_rank_single_shared_line_counts() -> None:
    # a.py 5-9 shares line 5 with rank 1
    assert hit_rank(RETRIEVED, [Range("a.py", 5, 9)]) == 1


def test_hit_rank_none() -> None:
    assert hit_rank(RETRIEVED, [Range("a.py", 6, 9)]) is None  # in the gap 6..9
    assert hit_rank(RETRIEVED, [Range("c.py", 1, 100)]) is None
    assert hit_rank([], [Range("a.py", 1, 5)]) is None
    assert hit_rank(RETRIEVED, []) is None


RANKS: list[int | None] = [1, 3, None, 2, 6]


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, 1 / 5),  # {1}
        (2, 2 / 5),  # {1, 2}
        (3, 3 / 5),  # {1, 3, 2}
        (5, 3 / 5),  # nothing between 4 and 5
        (6, 4 / 5),  # {1, 3, 2, 6}; None never counts
        (100, 4 / 5),
    ],
)
def test_recall_at_k(k: int, expected: float) -> None:
    assert recall_at_k(RANKS, k) == expected


def test_recall_at_k_edge_cases() -> None:
    assert recall_at_k([], 5) == 0.0
    assert recall_at_k([None, None], 5) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(RANKS, 0)


def test_mrr() -> None:
    # (1/1 + 1/2 + 0 + 1/4) / 4 = 1.75 / 4 = 0.4375
    assert mrr([1, 2, None, 4]) == 0.4375
    assert mrr([3]) == pytest.approx(1 / 3, abs=1e-15)


def test_mrr_edge_cases() -> None:
    assert mrr([]) == 0.0
    assert mrr([None, None]) == 0.0
    assert mrr([1, 1]) == 1.0


# --------------------------------------------------------------------------- citations

EVIDENCE = [Range("a.py", 10, 20), Range("b.md", 1, 2)]


def test_citation_scores() -> None:
    citations = [
        Range("a.py", 18, 22),  # correct; lines 18..22 (5), evidence lines 18, 19, 20
        Range("a.py", 20, 21),  # correct; lines 20, 21 already counted
        Range("c.txt", 1, 3),  # wrong; 3 lines, none evidence
        Range("b.md", 2, 2),  # correct; 1 line, evidence
    ]
    # cited = 4, correct = 3
    # cited lines = a.py{18..22} (5) + c.txt{1..3} (3) + b.md{2} (1) = 9
    # evidence lines cited = a.py{18,19,20} (3) + b.md{2} (1) = 4
    assert citation_scores(citations, EVIDENCE) == CitationScore(
        cited=4, correct=3, cited_lines=9, evidence_lines_cited=4
    )


def test_citation_scores_duplicate_citation() -> None:
    # the same citation twice: counted twice as a citation, its lines once
    cite = Range("a.py", 19, 21)  # lines 19, 20, 21; evidence 19, 20
    assert citation_scores([cite, cite], EVIDENCE) == CitationScore(2, 2, 3, 2)


def test_citation_scores_empty() -> None:
    assert citation_scores([], EVIDENCE) == CitationScore(0, 0, 0, 0)
    # no evidence: nothing is correct, lines still counted (a.py 1-2 = 2 lines)
    assert citation_scores([Range("a.py", 1, 2)], []) == CitationScore(1, 0, 2, 0)


def test_aggregate_citations() -> None:
    scores = [
        CitationScore(cited=4, correct=3, cited_lines=9, evidence_lines_cited=4),
        CitationScore(cited=0, correct=0, cited_lines=0, evidence_lines_cited=0),
        CitationScore(cited=2, correct=0, cited_lines=5, evidence_lines_cited=0),
        CitationScore(cited=1, correct=1, cited_lines=2, evidence_lines_cited=2),
    ]
    result = aggregate_citations(scores)
    assert set(result) == {"citation_precision", "citation_recall", "citation_line_precision"}
    # precision = (3 + 0 + 0 + 1) / (4 + 0 + 2 + 1) = 4/7
    assert result["citation_precision"] == pytest.approx(4 / 7, abs=1e-15)
    # recall: questions 1 and 4 have correct >= 1 -> 2/4
    assert result["citation_recall"] == 0.5
    # line precision = (4 + 0 + 0 + 2) / (9 + 0 + 5 + 2) = 6/16
    assert result["citation_line_precision"] == 0.375


def test_aggregate_citations_zero_denominators() -> None:
    zero = {"citation_precision": 0.0, "citation_recall": 0.0, "citation_line_precision": 0.0}
    assert aggregate_citations([]) == zero
    # two questions, no citations at all: 0/0 precision, 0/2 recall
    assert aggregate_citations([CitationScore(0, 0, 0, 0)] * 2) == zero


# --------------------------------------------------------------------------- abstention


def test_abstention_scores() -> None:
    abstained = [True, True, False, False, True, False, True, False]
    answerable = [False, True, False, True, False, True, True, True]
    # abstained: {0, 1, 4, 6} (4); unanswerable: {0, 2, 4} (3); answerable: {1, 3, 5, 6, 7} (5)
    # abstained and unanswerable: {0, 4} (2); abstained and answerable: {1, 6} (2)
    assert abstention_scores(abstained, answerable) == pytest.approx(
        {"abstain_precision": 2 / 4, "abstain_recall": 2 / 3, "wrongly_abstained": 2 / 5},
        abs=1e-15,
    )


def test_abstention_scores_perfect() -> None:
    assert abstention_scores([True, False], [False, True]) == {
        "abstain_precision": 1.0,
        "abstain_recall": 1.0,
        "wrongly_abstained": 0.0,
    }


def test_abstention_scores_never_abstains() -> None:
    # precision 0/0 -> 0.0; recall 0/1; wrongly 0/1
    assert abstention_scores([False, False], [True, False]) == {
        "abstain_precision": 0.0,
        "abstain_recall": 0.0,
        "wrongly_abstained": 0.0,
    }


def test_abstention_scores_all_answerable() -> None:
    # precision 0/2; recall 0/0 -> 0.0; wrongly 2/2
    assert abstention_scores([True, True], [True, True]) == {
        "abstain_precision": 0.0,
        "abstain_recall": 0.0,
        "wrongly_abstained": 1.0,
    }


def test_abstention_scores_empty_and_mismatch() -> None:
    assert abstention_scores([], []) == {
        "abstain_precision": 0.0,
        "abstain_recall": 0.0,
        "wrongly_abstained": 0.0,
    }
    with pytest.raises(ValueError):
        abstention_scores([True], [True, False])


# --------------------------------------------------------------------------- auroc


def test_auroc_perfect_and_inverted() -> None:
    scores = [0.9, 0.8, 0.3, 0.1]
    assert auroc(scores, [True, True, False, False]) == 1.0
    assert auroc(scores, [False, False, True, True]) == 0.0


def test_auroc_tie_counts_half() -> None:
    # P = {0.9, 0.5}, N = {0.5, 0.1}
    # pairs: 0.9>0.5 (1), 0.9>0.1 (1), 0.5=0.5 (1/2), 0.5>0.1 (1) -> 3.5 / 4 = 0.875
    assert auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 0.875


def test_auroc_mixed_unsorted() -> None:
    # P = {0.2, 0.7, 0.4}, N = {0.4, 0.6}
    # 0.2: vs 0.4 -> 0, vs 0.6 -> 0
    # 0.7: vs 0.4 -> 1, vs 0.6 -> 1
    # 0.4: vs 0.4 -> 1/2, vs 0.6 -> 0
    # total 2.5 over 3 * 2 = 6 pairs -> 5/12
    result = auroc([0.2, 0.7, 0.4, 0.6, 0.4], [True, True, False, False, True])
    assert result == pytest.approx(5 / 12, abs=1e-15)


def test_auroc_all_tied_is_half() -> None:
    assert auroc([0.3, 0.3, 0.3], [True, False, True]) == 0.5


def test_auroc_one_class_missing() -> None:
    assert auroc([0.1, 0.9], [True, True]) is None
    assert auroc([0.1, 0.9], [False, False]) is None
    assert auroc([], []) is None


def test_auroc_invalid_input() -> None:
    with pytest.raises(ValueError):
        auroc([0.1], [True, False])
    with pytest.raises(ValueError):
        auroc([math.nan, 0.2], [True, False])


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.booleans()), min_size=0, max_size=30
    )
)
def test_auroc_matches_pair_counting(pairs: list[tuple[int, bool]]) -> None:
    # small integer scores force many ties; compare against the definition, in exact arithmetic
    scores = [float(s) for s, _ in pairs]
    labels = [label for _, label in pairs]
    pos = [s for s, label in pairs if label]
    neg = [s for s, label in pairs if not label]
    result = auroc(scores, labels)
    if not pos or not neg:
        assert result is None
        return
    wins = sum(Fraction(1) if p > n else Fraction(1, 2) if p == n else 0 for p in pos for n in neg)
    assert result == pytest.approx(float(wins / (len(pos) * len(neg))), abs=1e-12)


# --------------------------------------------------------------------------- percentile


def test_percentile_interpolates() -> None:
    values = [35.0, 15.0, 50.0, 20.0, 40.0]  # sorted: 15 20 35 40 50
    # q=40: h = 4 * 0.4 = 1.6 -> 20 + 0.6 * (35 - 20) = 29
    assert percentile(values, 40) == pytest.approx(29.0, abs=1e-12)
    # q=50: h = 2 -> 35 exactly (the median)
    assert percentile(values, 50) == 35.0
    # q=75: h = 3 -> 40
    assert percentile(values, 75) == 40.0


def test_percentile_even_length() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    # q=50: h = 3 * 0.5 = 1.5 -> 2 + 0.5 * (3 - 2) = 2.5
    assert percentile(values, 50) == 2.5
    # q=25: h = 0.75 -> 1 + 0.75 * (2 - 1) = 1.75
    assert percentile(values, 25) == 1.75
    # q=90: h = 2.7 -> 3 + 0.7 * (4 - 3) = 3.7
    assert percentile(values, 90) == pytest.approx(3.7, abs=1e-12)


def test_percentile_extremes() -> None:
    values = [5.0, -2.0, 9.0]
    assert percentile(values, 0) == -2.0
    assert percentile(values, 100) == 9.0


def test_percentile_single_value_and_ties() -> None:
    assert percentile([7.0], 0) == 7.0
    assert percentile([7.0], 63.5) == 7.0
    assert percentile([7.0], 100) == 7.0
    assert percentile([5.0, 5.0, 5.0], 33) == 5.0


def test_percentile_does_not_mutate_input() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


def test_percentile_empty_and_invalid_q() -> None:
    assert percentile([], 50) == 0.0
    for q in (-0.1, 100.1, math.nan):
        with pytest.raises(ValueError):
            percentile([1.0, 2.0], q)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=20),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    np = pytest.importorskip("numpy")
    # same formula, same floating-point steps as numpy's "linear" method: bit-for-bit equal
    assert percentile(values, q) == float(np.percentile(values, q))
