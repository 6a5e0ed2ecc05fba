"""Metric definitions of the evaluation suite.

Pure functions over small frozen dataclasses: no I/O, standard library only.

Conventions shared by every function here:

* Lines are 1-based and ranges are inclusive at both ends (``Range``).
* A ratio whose denominator is zero (``0/0``) is defined as ``0.0``; each function
  says where this applies.  Nothing here returns NaN.
* Inputs that must be parallel lists (``abstention_scores``, ``auroc``) raise
  ``ValueError`` when their lengths differ.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CitationScore",
    "Range",
    "abstention_scores",
    "aggregate_citations",
    "auroc",
    "citation_scores",
    "contains_answer",
    "exact_match",
    "hit_rank",
    "mrr",
    "normalize_answer",
    "percentile",
    "recall_at_k",
    "token_f1",
]


# --------------------------------------------------------------------------- data shapes


@dataclass(frozen=True)
class Range:
    """Lines ``start_line..end_line`` (1-based, inclusive) of one file.

    ``file`` is compared as an exact string, so callers must use one spelling of a
    path (the project uses paths relative to the corpus root with ``/`` separators).

    Raises ``ValueError`` unless ``1 <= start_line <= end_line``.
    """

    file: str
    start_line: int
    end_line: int

    def __post_init__(self) -> None:
        if self.start_line < 1 or self.end_line < self.start_line:
            raise ValueError(
                f"invalid range {self.file}:{self.start_line}-{self.end_line}: "
                "need 1 <= start_line <= end_line"
            )

    def overlaps(self, other: Range) -> bool:
        """True when both ranges are in the same file and share at least one line.

        Touching ranges do not overlap unless they share a line: ``1-3`` and ``3-5``
        overlap (line 3), ``1-3`` and ``4-5`` do not.
        """
        return (
            self.file == other.file
            and self.start_line <= other.end_line
            and other.start_line <= self.end_line
        )

    def lines(self) -> set[tuple[str, int]]:
        """The set ``{(file, n) : start_line <= n <= end_line}``."""
        return {(self.file, n) for n in range(self.start_line, self.end_line + 1)}


@dataclass(frozen=True)
class CitationScore:
    """Citation counts for one question (see ``citation_scores``).

    * ``cited``: number of citations given (duplicates count separately).
    * ``correct``: how many of those citations overlap at least one evidence range.
    * ``cited_lines``: number of distinct ``(file, line)`` pairs covered by the citations.
    * ``evidence_lines_cited``: how many of those distinct cited lines are also covered
      by an evidence range.
    """

    cited: int
    correct: int
    cited_lines: int
    evidence_lines_cited: int


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, with ``0/0`` (any zero denominator) defined as 0.0."""
    return numerator / denominator if denominator else 0.0


# --------------------------------------------------------------------------- answer text

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _is_punctuation(ch: str) -> bool:
    # string.punctuation also holds ASCII symbols ($ + < = > ^ ` | ~), as in SQuAD;
    # the Unicode "P*" categories add curly quotes, dashes, ellipses, guillemets, ...
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str) -> str:
    """SQuAD answer normalization, extended to Unicode punctuation.

    In order:

    1. lower-case (``str.lower``);
    2. delete every punctuation character: ASCII ``string.punctuation`` and every
       character whose Unicode category starts with ``P`` (e.g. ``’ ‘ “ ” – — …``).
       Characters are deleted, not replaced by a space, so ``"don't"`` becomes
       ``"dont"`` and ``"1,000"`` becomes ``"1000"``;
    3. replace the whole words ``a``, ``an``, ``the`` by a space;
    4. collapse runs of whitespace to one space and strip both ends.

    The result's tokens are ``normalize_answer(s).split()``.
    """
    lowered = s.lower()
    no_punct = "".join(ch for ch in lowered if not _is_punctuation(ch))
    no_articles = _ARTICLES.sub(" ", no_punct)
    return " ".join(no_articles.split())


def exact_match(prediction: str, golds: list[str]) -> float:
    """1.0 if ``normalize_answer(prediction)`` equals ``normalize_answer(g)`` for some gold
    ``g``, else 0.0.  With no golds the result is 0.0.
    """
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(g) for g in golds) else 0.0


def _f1_tokens(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # SQuAD v2 convention: two empty answers agree, one empty answer scores 0.
        return 1.0 if pred_tokens == gold_tokens else 0.0
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: list[str]) -> float:
    """SQuAD token F1 of ``prediction`` against its best-matching gold.

    Tokens are those of ``normalize_answer``.  For one gold, with ``overlap`` the size of
    the multiset intersection of prediction and gold tokens (a token repeated ``k`` times
    in both counts ``k`` times), ``P = overlap / len(pred)``, ``R = overlap / len(gold)``
    and ``F1 = 2PR / (P + R)`` (0.0 when ``overlap == 0``).  When the prediction or the
    gold has no tokens, F1 is 1.0 if both have none and 0.0 otherwise (SQuAD v2).

    The result is the maximum over golds; 0.0 when ``golds`` is empty.
    """
    pred_tokens = normalize_answer(prediction).split()
    return max(
        (_f1_tokens(pred_tokens, normalize_answer(g).split()) for g in golds),
        default=0.0,
    )


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def contains_answer(prediction: str, golds: list[str]) -> float:
    """1.0 if some gold's tokens occur as a contiguous run of whole tokens in the
    prediction's tokens (both normalized with ``normalize_answer``), else 0.0.

    Matching is on whole tokens, so ``"2000"`` is contained in ``"In July 2000."`` but
    ``"200"`` is not, and ``"july 2000"`` is contained but ``"2000 july"`` is not.
    A gold that normalizes to no tokens (e.g. ``"The."``) never matches, so that it
    cannot be "contained" in every prediction.  0.0 when ``golds`` is empty.
    """
    pred_tokens = normalize_answer(prediction).split()
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        if gold_tokens and _contains_run(pred_tokens, gold_tokens):
            return 1.0
    return 0.0


# --------------------------------------------------------------------------- retrieval


def hit_rank(retrieved: list[Range], evidence: list[Range]) -> int | None:
    """1-based rank of the first retrieved range that overlaps (``Range.overlaps``) any
    evidence range; ``None`` when none does (including when either list is empty).
    """
    for rank, chunk in enumerate(retrieved, start=1):
        if any(chunk.overlaps(ev) for ev in evidence):
            return rank
    return None


def recall_at_k(ranks: list[int | None], k: int) -> float:
    """Share of questions whose hit rank is at most ``k``.

    ``ranks`` holds one ``hit_rank`` per question (``None`` = no hit, never counted).
    Result ``= #{r : r is not None and r <= k} / len(ranks)``; 0.0 for an empty list.
    Raises ``ValueError`` when ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    hits = sum(1 for r in ranks if r is not None and r <= k)
    return _ratio(hits, len(ranks))


def mrr(ranks: list[int | None]) -> float:
    """Mean reciprocal rank: the mean over questions of ``1 / r``, where ``None`` (no hit)
    contributes 0.  0.0 for an empty list.
    """
    return _ratio(sum(1.0 / r for r in ranks if r is not None), len(ranks))


# --------------------------------------------------------------------------- citations


def citation_scores(citations: list[Range], evidence: list[Range]) -> CitationScore:
    """Score one answer's citations against the question's evidence ranges.

    * ``cited = len(citations)``;
    * ``correct`` = number of citations that overlap at least one evidence range;
    * ``cited_lines`` = size of the union of ``c.lines()`` over citations (a line cited
      twice counts once);
    * ``evidence_lines_cited`` = size of that union intersected with the union of
      ``e.lines()`` over evidence ranges.
    """
    cited_lines: set[tuple[str, int]] = set()
    for c in citations:
        cited_lines |= c.lines()
    evidence_lines: set[tuple[str, int]] = set()
    for e in evidence:
        evidence_lines |= e.lines()
    return CitationScore(
        cited=len(citations),
        correct=sum(1 for c in citations if any(c.overlaps(e) for e in evidence)),
        cited_lines=len(cited_lines),
        evidence_lines_cited=len(cited_lines & evidence_lines),
    )


def aggregate_citations(scores: list[CitationScore]) -> dict[str, float]:
    """Aggregate per-question citation scores; pass answerable questions only.

    * ``citation_precision = sum(correct) / sum(cited)`` (micro-averaged over citations);
    * ``citation_recall`` = share of questions with ``correct >= 1``;
    * ``citation_line_precision = sum(evidence_lines_cited) / sum(cited_lines)``.

    Every ``0/0`` is 0.0: with no citations at all, precision and line precision are
    0.0, and with no questions every value is 0.0.
    """
    return {
        "citation_precision": _ratio(sum(s.correct for s in scores), sum(s.cited for s in scores)),
        "citation_recall": _ratio(sum(1 for s in scores if s.correct >= 1), len(scores)),
        "citation_line_precision": _ratio(
            sum(s.evidence_lines_cited for s in scores), sum(s.cited_lines for s in scores)
        ),
    }


# --------------------------------------------------------------------------- abstention


def abstention_scores(abstained: list[bool], answerable: list[bool]) -> dict[str, float]:
    """Abstention quality over questions; ``abstained[i]`` and ``answerable[i]`` describe
    question ``i``.

    * ``abstain_precision`` = #(abstained and unanswerable) / #abstained;
    * ``abstain_recall`` = #(abstained and unanswerable) / #unanswerable;
    * ``wrongly_abstained`` = #(abstained and answerable) / #answerable.

    Every ``0/0`` is 0.0 (e.g. precision when the system never abstains, recall when
    every question is answerable).  Raises ``ValueError`` when the lengths differ.
    """
    if len(abstained) != len(answerable):
        raise ValueError(
            f"abstained and answerable differ in length: {len(abstained)} != {len(answerable)}"
        )
    pairs = list(zip(abstained, answerable, strict=True))
    n_abstained = sum(1 for a, _ in pairs if a)
    n_unanswerable = sum(1 for _, ans in pairs if not ans)
    n_answerable = len(pairs) - n_unanswerable
    right = sum(1 for a, ans in pairs if a and not ans)
    wrong = sum(1 for a, ans in pairs if a and ans)
    return {
        "abstain_precision": _ratio(right, n_abstained),
        "abstain_recall": _ratio(right, n_unanswerable),
        "wrongly_abstained": _ratio(wrong, n_answerable),
    }


# --------------------------------------------------------------------------- calibration


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve, as the Mann–Whitney probability.

    With ``P`` the scores labelled True and ``N`` those labelled False::

        AUROC = ( #{(p, n) : p > n} + 0.5 * #{(p, n) : p == n} ) / (|P| * |N|)

    over all pairs ``p in P``, ``n in N``: the probability that a random positive scores
    higher than a random negative, ties counting one half.  1.0 means every positive
    outranks every negative, 0.5 is chance (or all scores equal).  ``None`` when either
    class is empty.  Computed in ``O(n log n)`` with mid-ranks.

    Raises ``ValueError`` when the lengths differ or a score is NaN.
    """
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} != {len(labels)}")
    if any(math.isnan(s) for s in scores):
        raise ValueError("scores must not contain NaN")
    n_pos = sum(1 for label in labels if label)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    # Sum of the (1-based, mid-rank for ties) ranks of the positives.
    rank_sum_pos = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid_rank = (i + j) / 2 + 1  # ranks i+1 .. j+1 share their mean
        rank_sum_pos += mid_rank * sum(1 for t in range(i, j + 1) if labels[order[t]])
        i = j + 1
    u_pos = rank_sum_pos - n_pos * (n_pos + 1) / 2
    return u_pos / (n_pos * n_neg)


# --------------------------------------------------------------------------- latency etc.


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` by linear interpolation between closest ranks.

    Same as ``numpy.percentile(values, q)`` (method ``"linear"``): with ``x`` the sorted
    values and ``h = (len(x) - 1) * q / 100``, the result is
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.  So ``q = 0``
    gives the minimum, ``q = 100`` the maximum and ``q = 50`` the median.

    0.0 for an empty list.  Raises ``ValueError`` unless ``0 <= q <= 100``.
    """
    if not 0 <= q <= 100:  # also rejects NaN
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        return 0.0
    xs = sorted(values)
    h = (len(xs) - 1) * (q / 100)
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    t = h - lo
    a, b = xs[lo], xs[hi]
    diff = b - a
    # numpy's _lerp: interpolate from the nearer end, for exactness at t == 1.
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


# --------------------------------------------------------------------------- summary


def summary_metrics(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Every aggregate metric over per-question rows (as ``rag eval`` writes them), rounded
    to four places: retrieval ranks, citations, answers, abstention, AUROC, accuracy."""
    answerable = [r for r in rows if r["answerable"]]
    ranks = [r["hit_rank"] for r in answerable]
    metrics: dict[str, float | None] = {f"recall@{k}": recall_at_k(ranks, k) for k in (1, 3, 5, 10)}
    metrics["mrr"] = mrr(ranks)
    metrics.update(aggregate_citations([CitationScore(**r["citation"]) for r in answerable]))
    for key in ("exact_match", "f1", "contains"):  # over rows with gold answers
        scored = [r[key] for r in answerable if r[key] is not None]
        metrics[key] = sum(scored) / len(scored) if scored else 0.0
    metrics.update(
        abstention_scores([r["abstained"] for r in rows], [r["answerable"] for r in rows])
    )
    metrics["abstention_auroc"] = auroc(
        [r["confidence"] for r in rows], [r["answerable"] for r in rows]
    )
    metrics["accuracy"] = sum(r["correct"] for r in rows) / len(rows) if rows else 0.0
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
