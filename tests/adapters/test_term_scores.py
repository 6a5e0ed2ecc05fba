"""The keyword search summed from per-term bm25 parts (rag/adapters/term_scores.py) gives
FTS5's own ranking, to the last bit, on real text; its cache follows writes and stays within
its budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.adapters.lexical import LexicalIndex, query_terms
from rag.adapters.term_scores import TermScores, best
from rag.models import Chunk

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
QUESTIONS = (
    "When did Putin last visit North Korea?",
    "Who travelled with Putin on the trip to Pyongyang?",
    "What did Kim Jong Un say about the partnership with Russia?",
    "Which country does Putin visit after North Korea?",
    "sanctions weapons artillery shells Ukraine war",
    "the",
)


def _chunk(path: str, line: int, text: str) -> Chunk:
    return Chunk(
        id=f"{path}:{line}",
        path=path,
        start_line=line,
        end_line=line,
        start_char=0,
        end_char=0,
        text=text,
    )


def _index(tmp_path: Path) -> LexicalIndex:
    index = LexicalIndex(tmp_path / "lexical.sqlite")
    chunks = [
        _chunk(f.name, n, line)
        for f in sorted(CORPUS.glob("*.txt"))
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip()
    ]
    assert len(chunks) > 100
    index.upsert(chunks)
    return index


def _fts5(index: LexicalIndex, question: str, k: int) -> list[tuple[str, float]]:
    """FTS5's own multi-term ranking of the same terms (the query the cache replaces)."""
    terms = index._affordable(query_terms(question))
    if not terms:
        return []
    rows = index._db.execute(
        "SELECT c.id, bm25(chunks_fts) AS rank FROM chunks_fts "
        "JOIN chunks c ON c.rowid = chunks_fts.rowid WHERE chunks_fts MATCH ? "
        "ORDER BY rank, c.id LIMIT ?",
        (" OR ".join(f'"{t}"' for t in terms), k),
    ).fetchall()
    return [(i, round(-float(r), 6)) for i, r in rows]


def test_summed_parts_rank_exactly_as_fts5(tmp_path: Path) -> None:
    index = _index(tmp_path)
    for question in QUESTIONS:
        for k in (1, 10, 80):
            got = [(c.id, s) for c, s in index.search(question, k)]
            assert got == _fts5(index, question, k), (question, k)
    assert len(index._terms) > 10  # the parts were kept


def test_the_sum_is_fts5s_double_not_a_close_one(tmp_path: Path) -> None:
    index = _index(tmp_path)
    question = "Putin Kim Pyongyang summit Russia Korea"
    terms = query_terms(question)
    parts = [index._term_ranks(t) for t in terms]
    rowids, ranks = best(parts, 50)
    whole = dict(
        index._db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?",
            (" OR ".join(f'"{t}"' for t in terms),),
        ).fetchall()
    )
    assert len(rowids) == 50
    assert [whole[r] for r in rowids.tolist()] == ranks.tolist()  # bit-equal doubles


def test_the_cache_follows_writes(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert not [c for c, _ in index.search("zanzibar", 5)]
    index.search("Putin zanzibar", 5)
    index.upsert([_chunk("new.txt", 1, "Putin flew to Zanzibar.")])
    assert [c.id for c, _ in index.search("Putin zanzibar", 1)] == ["new.txt:1"]
    index.delete(["new.txt:1"])
    assert "new.txt:1" not in [c.id for c, _ in index.search("Putin zanzibar", 80)]


def test_the_cache_keeps_the_newest_terms_within_its_budget() -> None:
    cache = TermScores(budget=10)
    reads: list[str] = []

    def read(term: str) -> tuple[np.ndarray, np.ndarray]:
        reads.append(term)
        n = {"a": 4, "b": 4, "c": 4, "huge": 11}[term]
        return np.arange(n, dtype=np.int64), -np.ones(n)

    cache.get("a", read)
    cache.get("b", read)
    cache.get("a", read)  # a is now the newest
    cache.get("c", read)  # 12 > 10: b goes
    cache.get("huge", read)  # over the budget alone: not kept
    cache.get("a", read)
    cache.get("b", read)
    assert reads == ["a", "b", "c", "huge", "b"]
    assert len(cache) == 2
