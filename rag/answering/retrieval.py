"""Hybrid retrieval: dense (Chroma) and lexical (BM25) rankings fused by reciprocal rank,
with neighbouring chunks of one file merged into one passage."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.adapters.embedder import Embedder
from rag.adapters.lexical import LexicalIndex
from rag.adapters.store import ChromaStore
from rag.config import Settings
from rag.models import Chunk, Passage

if TYPE_CHECKING:
    import numpy as np

RRF_K = 60  # the usual constant of reciprocal rank fusion


@dataclass(frozen=True)
class Retrieved:
    passages: list[Passage]  # best first; score = fused score
    vector: np.ndarray  # the question's embedding
    best_dense: float  # highest cosine similarity among the dense hits


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) to the ids it ranks."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
    return fused


def _whole_lines(chunk: Chunk) -> bool:
    return chunk.text.count("\n") == chunk.end_line - chunk.start_line


class Retriever:
    def __init__(
        self, settings: Settings, embedder: Embedder, store: ChromaStore, lexical: LexicalIndex
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        # Chunks never returned, as if they were not indexed (``rag eval --drop-evidence``).
        self.exclude: Callable[[Chunk], bool] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="rag-keywords")
            return self._executor

    def search(
        self,
        question: str,
        k: int,
        paths: Sequence[str] | None = None,
        merge: bool = True,
        embed: Callable[[str], np.ndarray] | None = None,
    ) -> Retrieved:
        """The ``k`` best passages for ``question``; ``paths`` restricts to folder/file prefixes.
        ``embed``: the question's vector from elsewhere (the reader's run over the question
        gives it as :meth:`Embedder.encode_query` would), instead of a run of its own."""
        depth = max(4 * k, 20)
        # Keyword search needs no embedding: it runs on a second thread while the question
        # is embedded and the vector index searched (SQLite, torch and Chroma release the GIL).
        keywords = (
            self._pool().submit(self.lexical.search, question, depth, paths)
            if self.settings.hybrid
            else None
        )
        try:
            vector = (embed or self.embedder.encode_query)(question)
            docs = self.lexical.paths(paths) if paths else None
            nearest = self.store.nearest(vector, depth, docs)
        finally:
            lexical = keywords.result() if keywords is not None else []
        dense = self._rows(nearest, {c.id: c for c, _ in lexical})
        if self.exclude is not None:
            dense = [p for p in dense if not self.exclude(p.chunk)]
            lexical = [(c, s) for c, s in lexical if not self.exclude(c)]
        chunks = {p.chunk.id: p.chunk for p in dense}
        rankings = [[p.chunk.id for p in dense]]
        if keywords is not None:
            chunks.update((c.id, c) for c, _ in lexical)
            rankings.append([c.id for c, _ in lexical])
        fused = rrf(rankings)
        order = sorted(fused, key=lambda cid: (-fused[cid], cid))[:k]
        passages = [Passage(chunk=chunks[cid], score=round(fused[cid], 6)) for cid in order]
        best_dense = max((p.score for p in dense), default=0.0)
        if merge:
            passages = self.merge_neighbours(passages)
        return Retrieved(passages, vector, best_dense)

    def _rows(self, nearest: list[tuple[str, float]], known: dict[str, Chunk]) -> list[Passage]:
        """The dense leg's passages: rows from the keyword search's results or the keyword
        index (which holds every chunk; ~2.7 ms less than Chroma's metadata for 80 rows), from
        Chroma for any it lacks (an ingest between its two writes).  A chunk in neither was
        deleted while the query ran: it is no longer indexed, and left out."""
        wanted = [cid for cid, _ in nearest if cid not in known]
        rows = {**known, **self.lexical.chunks(wanted)} if wanted else known
        missing = [cid for cid in wanted if cid not in rows]
        if missing:
            rows = {**rows, **{c.id: c for c in self.store.chunks_for(missing)}}
        return [Passage(chunk=rows[cid], score=score) for cid, score in nearest if cid in rows]

    def merge_neighbours(self, passages: list[Passage]) -> list[Passage]:
        """Join passages that are adjacent lines of one file (blank lines between allowed)."""
        merged: list[Passage] = []
        for passage in passages:
            for i, kept in enumerate(merged):
                joined = self._join(kept.chunk, passage.chunk)
                if joined is not None:
                    merged[i] = Passage(chunk=joined, score=max(kept.score, passage.score))
                    break
            else:
                merged.append(passage)
        return merged

    def _join(self, a: Chunk, b: Chunk) -> Chunk | None:
        if a.path != b.path or not (_whole_lines(a) and _whole_lines(b)):
            return None
        if a.page != b.page:
            return None  # a passage never spans two pages of a PDF
        first, second = (a, b) if a.start_line <= b.start_line else (b, a)
        if second.start_line <= first.end_line:
            return None  # overlapping chunks (overlap setting): keep them apart
        gap = second.start_line - first.end_line - 1
        if gap and not self.lexical.blank_between(
            first.path, first.end_line + 1, second.start_line - 1
        ):
            return None  # non-blank lines between them were not retrieved
        text = first.text + "\n" * (gap + 1) + second.text
        return Chunk(
            id=f"{first.id}+{second.id}",
            path=first.path,
            start_line=first.start_line,
            end_line=second.end_line,
            start_char=first.start_char,
            end_char=second.end_char,
            text=text,
            heading=first.heading,
            page=first.page,
            page_first_line=first.page_first_line,
        )
