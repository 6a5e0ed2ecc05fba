"""The lexical index: SQLite FTS5 (BM25) beside the vector index, kept in step with it.

Chroma's own hybrid search is cloud-only, so keyword search is ours.  One row per
chunk (same id as in Chroma) plus an FTS5 table over the text; every write goes
through a transaction, so the file is never half-updated.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rag.adapters.faults import damaged_error, is_damage, is_disk_full
from rag.adapters.term_scores import TermScores, best
from rag.models import Chunk
from rag.text import STOPWORDS

if TYPE_CHECKING:
    import numpy as np

_SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    path TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    page INTEGER,
    page_first_line INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path, start_line);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TABLE IF NOT EXISTS sentence_vectors(
    id TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    vectors BLOB NOT NULL
);
"""
# sentence_vectors: per chunk id, the vectors of its sentences (in sentence_spans order) taken
# from the chunk's own embedding run, float16.  Written with the chunk; a chunk without a row
# (older index, vectors reused from elsewhere) gets them computed when a query needs them.
# Columns added after the first release: indexes built before get them on open.
_ADDED_COLUMNS = (
    ("heading", "TEXT NOT NULL DEFAULT ''"),
    ("page", "INTEGER"),
    ("page_first_line", "INTEGER"),
)
_COLUMNS = (
    "id, path, start_line, end_line, start_char, end_char, text, heading, page, page_first_line"
)
_TERM = re.compile(r"\w+", re.UNICODE)
# FTS5 scores every chunk holding any of a question's terms: at most this many of them
# (about 15 ms on a 2-core machine; 97% of the full search's best 20 kept, 100k chunks).
KEYWORD_POSTINGS = 10_000
# Chunk rows kept in memory, most recently read (~1-2 KB each).
ROWS_KEPT = 20_000


def query_terms(question: str) -> list[str]:
    """Distinct lower-cased words of the question that carry meaning, in order."""
    seen: dict[str, None] = {}
    for word in _TERM.findall(question.lower()):
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def _by_rank(row: tuple[object, ...]) -> tuple[float, str]:
    """Rows (the chunk's columns, then its rank) best first, ties by chunk id."""
    return (float(row[10]), str(row[0]))  # type: ignore[arg-type]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _row(c: Chunk) -> tuple[object, ...]:
    return (
        c.id,
        c.path,
        c.start_line,
        c.end_line,
        c.start_char,
        c.end_char,
        c.text,
        c.heading,
        c.page,
        c.page_first_line,
    )


def _chunk_of(r: Sequence[Any]) -> Chunk:
    """A row of ``chunks`` (columns as ``_COLUMNS``) as a Chunk."""
    return Chunk(
        id=r[0],
        path=r[1],
        start_line=r[2],
        end_line=r[3],
        start_char=r[4],
        end_char=r[5],
        text=r[6],
        heading=r[7] or "",
        page=r[8],
        page_first_line=r[9],
    )


P = ParamSpec("P")
R = TypeVar("R")


def _named(method: Callable[P, R]) -> Callable[P, R]:
    """A read that fails because the file is damaged says so, naming the file (the check at
    open reads every page, so this is what changed under a running reader)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            where = getattr(args[0], "path", "") if args else ""
            raise damaged_error(f"the keyword index {where}", exc) from exc

    return wrapper


class LexicalIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except sqlite3.OperationalError as exc:
            if not path.exists() or not is_disk_full(exc, path.parent):
                raise
            # A full disk: SQLite cannot make the shared-memory file a WAL database wants
            # beside it.  Read the file as it is (queries keep working; writes fail, named).
            self._db.close()
            uri = f"{path.resolve().as_uri()}?immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._terms = TermScores()  # each query term's bm25 part, by rowid
        self._forget_statistics()

    def _add_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(chunks)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE chunks ADD COLUMN {name} {declaration}")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise

    def close(self) -> None:
        self._db.close()

    def forget_cache(self) -> None:
        """Drop cached statistics and rows (another process changed the index)."""
        with self._lock:
            self._forget_statistics()

    # -- writes ------------------------------------------------------------
    def upsert(
        self, chunks: Sequence[Chunk], sentence_vectors: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Insert or replace ``chunks`` (and, in the same transaction, any of their
        ``sentence_vectors`` given: chunk id -> sentences x dimension)."""
        import numpy as np

        vector_rows = [
            (cid, int(v.shape[1]), np.asarray(v, dtype=np.float16).tobytes())
            for cid, v in (sentence_vectors or {}).items()
            if v.ndim == 2
        ]
        rows = [_row(c) for c in chunks]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM chunks WHERE id = ?", [(r[0],) for r in rows])
                self._db.executemany(
                    f"INSERT INTO chunks({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO sentence_vectors(id, dimension, vectors) "
                    "VALUES (?, ?, ?)",
                    vector_rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._forget_statistics()  # after the write, under the lock: no search between

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            gone = [(i,) for i in ids]
            self._db.executemany("DELETE FROM chunks WHERE id = ?", gone)
            self._db.executemany("DELETE FROM sentence_vectors WHERE id = ?", gone)
            self._db.execute("COMMIT")
            self._forget_statistics()  # after the write, under the lock: no search between

    def replace_all(self, chunks: Sequence[Chunk]) -> None:
        """Hold exactly ``chunks`` (a rebuild from the vector index), in one transaction.
        Stored sentence vectors of chunks that stay are kept (ids name content)."""
        rows = [_row(c) for c in chunks]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM chunks")
                self._db.executemany(
                    f"INSERT INTO chunks({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute(
                    "DELETE FROM sentence_vectors WHERE id NOT IN (SELECT id FROM chunks)"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._forget_statistics()  # after the write, under the lock: no search between

    def clear(self) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM sentence_vectors")
            self._db.execute("COMMIT")
            self._forget_statistics()  # after the write, under the lock: no search between

    # -- reads -------------------------------------------------------------
    @_named
    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors of these chunks (float32; chunks without any: absent)."""
        import numpy as np

        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                marks = ",".join("?" * len(part))
                for cid, dim, blob in self._db.execute(
                    f"SELECT id, dimension, vectors FROM sentence_vectors WHERE id IN ({marks})",
                    part,
                ):
                    out[cid] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
                    out[cid] = out[cid].reshape(-1, dim)
        return out

    @_named
    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """These chunks' rows, by id (ids not indexed here: absent).  Rows read are kept (the
        most recent ROWS_KEPT; all forgotten on any write, as the statistics are): a warm
        search's 80 rows from SQLite took 1.3 ms of its 10 at 100k chunks."""
        out: dict[str, Chunk] = {}
        with self._lock:
            missing = []
            for cid in ids:
                kept = self._rows.get(cid)
                if kept is None:
                    missing.append(cid)
                else:
                    self._rows.move_to_end(cid)
                    out[cid] = kept
            for i in range(0, len(missing), 500):
                part = missing[i : i + 500]
                marks = ",".join("?" * len(part))
                for row in self._db.execute(
                    f"SELECT {_COLUMNS} FROM chunks WHERE id IN ({marks})", part
                ):
                    out[row[0]] = self._keep(_chunk_of(row))
        return out

    def _keep(self, chunk: Chunk) -> Chunk:
        """``chunk`` kept among the recent rows; the caller holds the lock."""
        self._rows[chunk.id] = chunk
        while len(self._rows) > ROWS_KEPT:
            self._rows.popitem(last=False)
        return chunk

    @_named
    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    @_named
    def ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM chunks")}

    @_named
    def paths(self, prefixes: Sequence[str] | None = None) -> list[str]:
        """Document paths, optionally only those under any of ``prefixes``."""
        sql, args = "SELECT DISTINCT path FROM chunks", []
        if prefixes:
            sql += " WHERE " + " OR ".join("path LIKE ? ESCAPE '\\'" for _ in prefixes)
            args = [_like_prefix(p) for p in prefixes]
        with self._lock:
            return sorted(row[0] for row in self._db.execute(sql + " ORDER BY path", args))

    def _forget_statistics(self) -> None:
        """Drop what was counted over the chunks (they changed)."""
        self._idf_cache: dict[str, float] = {}
        self._df_cache: dict[str, int] = {}  # query term -> chunks holding it
        self._total: int | None = None  # chunk count for idf()
        self._terms.clear()
        self._rows: OrderedDict[str, Chunk] = OrderedDict()  # recent rows by id

    def _df(self, term: str) -> int:
        """How many chunks hold ``term`` (as FTS5 tokenizes it); the caller holds the lock."""
        got = self._df_cache.get(term)
        if got is None:
            clean = term.replace('"', "")
            got = 0
            if clean.strip():
                query = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
                got = int(self._db.execute(query, (f'"{clean}"',)).fetchone()[0])
            self._df_cache[term] = got
        return got

    def _affordable(self, terms: list[str]) -> list[str]:
        """The question's terms, rarest first, while their chunks together stay within
        KEYWORD_POSTINGS (at least the rarest one), in the question's order.  FTS5 scores
        every chunk that holds any term, so on a big index a long question's commonest words
        ("file", "used") cost most of a search and move its ranking least; on a small one
        every term is kept.  The caller holds the lock."""
        if len(terms) < 2:
            return terms
        df = {t: self._df(t) for t in terms}
        if sum(df.values()) <= KEYWORD_POSTINGS:
            return terms
        keep: set[str] = set()
        total = 0
        for term in sorted(terms, key=lambda t: (df[t], t)):
            if keep and total + df[term] > KEYWORD_POSTINGS:
                break
            keep.add(term)
            total += df[term]
        return [t for t in terms if t in keep]

    def _term_ranks(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk holding ``term`` and the term's part of its bm25 rank (FTS5's own
        function over a one-term query); the caller holds the lock."""
        import numpy as np

        got = self._db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?",
            (f'"{term}"',),
        ).fetchall()
        if not got:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rowids, ranks = zip(*got, strict=True)
        return np.asarray(rowids, dtype=np.int64), np.asarray(ranks, dtype=np.float64)

    @_named
    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        """BM25-style inverse document frequency of each term over the chunks (0 df: high)."""
        import math

        out: dict[str, float] = {}
        with self._lock:
            if self._total is None:
                self._total = int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
            total = self._total
            for term in terms:
                if term in self._idf_cache:
                    out[term] = self._idf_cache[term]
                    continue
                df = self._df(term)
                value = math.log(1 + (total - df + 0.5) / (df + 0.5))
                self._idf_cache[term] = out[term] = value
        return out

    @_named
    def blank_between(self, path: str, start_line: int, end_line: int) -> bool:
        """Are lines ``start_line..end_line`` of ``path`` all blank?

        Every non-blank line belongs to some chunk, so a line no chunk covers is blank;
        a covered line is read from the chunk's text.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT start_line, end_line, text FROM chunks "
                "WHERE path = ? AND end_line >= ? AND start_line <= ?",
                (path, start_line, end_line),
            ).fetchall()
        for first, last, text in rows:
            lines = text.split("\n")
            if len(lines) != last - first + 1:
                return False  # a piece of a long line: not blank
            for number in range(max(first, start_line), min(last, end_line) + 1):
                if lines[number - first].strip():
                    return False
        return True

    @_named
    def search(
        self, question: str, k: int, prefixes: Sequence[str] | None = None
    ) -> list[tuple[Chunk, float]]:
        """BM25 best matches for the question's words (any of them), best first."""
        terms = query_terms(question)
        if not terms:
            return []
        with self._lock:
            terms = self._affordable(terms)
        match = " OR ".join(f'"{t}"' for t in terms)
        columns = (
            "c.id, c.path, c.start_line, c.end_line, c.start_char, c.end_char, c.text, "
            "c.heading, c.page, c.page_first_line"
        )
        filtered = (
            f"SELECT {columns}, bm25(chunks_fts) AS rank "
            "FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
            "WHERE chunks_fts MATCH ?"
        )
        args: list[object] = [match]
        if prefixes:
            filtered += " AND (" + " OR ".join("c.path LIKE ? ESCAPE '\\'" for _ in prefixes) + ")"
            args += [_like_prefix(p) for p in prefixes]
        filtered += " ORDER BY rank, c.id LIMIT ?"
        args.append(k)
        with self._lock:
            rows = None
            if not prefixes:
                # Faster: the question's ranking summed from its terms' cached bm25 parts
                # (rag/adapters/term_scores.py), the best 2k rows read.  Their order among
                # equal scores is by id only within those, so this is kept only when no tie
                # crosses the cut.
                cut = 2 * k
                rowids, ranks = best([self._terms.get(t, self._term_ranks) for t in terms], cut)
                rank_of = dict(zip(rowids.tolist(), ranks.tolist(), strict=True))
                marks = ",".join("?" * len(rank_of))
                found = self._db.execute(
                    f"SELECT {columns}, c.rowid FROM chunks c WHERE c.rowid IN ({marks})",
                    list(rank_of),
                ).fetchall()
                rows = sorted(((*r[:10], rank_of[r[10]]) for r in found), key=_by_rank)
                tie_at_cut = len(rows) == cut and rows[-1][10] == rows[k - 1][10]
                rows = None if tie_at_cut else rows[:k]  # a tie crossing it: rank them all
            if rows is None:
                rows = self._db.execute(filtered, args).fetchall()
        return [(_chunk_of(r), round(-float(r[10]), 6)) for r in rows]
