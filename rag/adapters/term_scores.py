"""BM25 by parts: each query term's contribution to FTS5's ``bm25()`` over the chunks that
hold it, cached per term, and a question's ranking summed from them.

FTS5's bm25 is a sum over the query's phrases, in query order, of
``idf(term) * tf-part(term, chunk)``; both factors depend only on the term, the chunk and the
whole index (row count, average length), never on the other terms.  So a question's scores
are its terms' single-term scores added in the same order: the same doubles FTS5 computes
(``tests/adapters/test_term_scores.py`` checks equality, not closeness).  A question's common
terms (its longest posting lists, most of a keyword search's time) recur across questions,
so each term's scores are read from FTS5 once and kept, newest use last, up to
``CACHE_POSTINGS`` postings in all; any change to the index forgets them (as it forgets the
document frequencies)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

CACHE_POSTINGS = 2_000_000  # (rowid, score) pairs kept: 32 MB


class TermScores:
    """Per-term (rowids, FTS5 rank contributions), least recently used forgotten first.
    The caller serialises access (the keyword index's lock)."""

    def __init__(self, budget: int = CACHE_POSTINGS) -> None:
        self.budget = budget
        self._kept: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._size = 0

    def clear(self) -> None:
        self._kept.clear()
        self._size = 0

    def __len__(self) -> int:
        return len(self._kept)

    def get(
        self, term: str, read: Callable[[str], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The term's (rowids, ranks): kept, else ``read(term)`` and kept."""
        got = self._kept.get(term)
        if got is not None:
            self._kept.move_to_end(term)
            return got
        got = read(term)
        size = len(got[0])
        if size <= self.budget:
            self._kept[term] = got
            self._size += size
            while self._size > self.budget:
                _, (old, _) = self._kept.popitem(last=False)
                self._size -= len(old)
        return got


def best(parts: Sequence[tuple[np.ndarray, np.ndarray]], cut: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``cut`` best rowids (lowest summed rank, FTS5's order) over the terms' ``parts``
    and their ranks, best first (ties in any order: the caller breaks them by chunk id)."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    rowids = np.concatenate([ids for ids, _ in parts])
    unique, where = np.unique(rowids, return_inverse=True)
    total = np.zeros(len(unique))
    at = 0
    for ids, ranks in parts:  # in query order, as FTS5 adds them
        total[where[at : at + len(ids)]] += ranks  # a term holds a rowid once
        at += len(ids)
    everything = np.arange(len(total))
    chosen = np.argpartition(total, cut - 1)[:cut] if len(total) > cut else everything
    chosen = chosen[np.argsort(total[chosen], kind="stable")]
    return unique[chosen], total[chosen]
