"""Hybrid retrieval: fusion, the keyword index kept in step, neighbour merging, path filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.adapters.embedder import Embedder
from rag.answering.retrieval import rrf
from rag.models import Chunk
from rag.runtime import Runtime
from tests.conftest import PUTIN_2000, make_runtime


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert fused["a"] == 1 / 61 + 1 / 62
    assert fused["c"] == 1 / 63 + 1 / 61
    assert fused["d"] == 1 / 63
    assert sorted(fused, key=lambda i: -fused[i]) == ["a", "c", "b", "d"]


def test_keyword_index_follows_every_ingest_and_delete(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    service.ingest()
    ids = lambda: set(runtime.store.collection.get(include=[])["ids"])  # noqa: E731
    assert runtime.lexical.ids() == ids() and runtime.lexical.count() > 0
    doc = runtime.settings.corpus_dir / "002_218709f738487987.txt"
    doc.write_text(doc.read_text().replace("6,700 containers", "9,999 crates"))
    service.ingest()
    assert runtime.lexical.ids() == ids()
    assert not runtime.lexical.search("6,700 containers", 5)[0][0].text.count("6,700")
    doc.unlink()
    service.ingest(prune=True)
    assert runtime.lexical.ids() == ids()
    assert "002_218709f738487987.txt" not in runtime.lexical.paths()


def test_a_missing_keyword_index_is_rebuilt_from_chroma(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    runtime.lexical.clear()
    assert runtime.ingest_service().stale_reason() == (
        "the keyword index is out of step with the vector index"
    )
    answer = runtime.answer_service.ask(PUTIN_2000, backend="extractive")  # rebuilds on open
    assert runtime.lexical.count() == runtime.store.count()
    assert "2000" in answer.answer


def test_keyword_search_finds_exact_terms(corpus_runtime: Runtime) -> None:
    hits = corpus_runtime.lexical.search("Belousov Lavrov Novak", 3)
    assert hits[0][0].path == "003_04a47c1ca7d95a89.txt" and "Belousov" in hits[0][0].text
    only = corpus_runtime.lexical.search("Putin", 50, ["001_"])
    assert only and {c.path for c, _ in only} == {"001_de25de7d48a037bb.txt"}


def test_paths_restrict_retrieval(corpus_runtime: Runtime) -> None:
    found = corpus_runtime.answer_service.retrieve(PUTIN_2000, 5, ["004_"])
    assert found.passages and {p.chunk.path for p in found.passages} == {
        "004_5e50463e41e8a191.txt"
    }
    answer = corpus_runtime.answer_service.ask(PUTIN_2000, backend="extractive", paths=["003_"])
    assert [(c.path, c.start_line) for c in answer.citations] == [("003_04a47c1ca7d95a89.txt", 2)]
    assert corpus_runtime.answer_service.retrieve(PUTIN_2000, 5, ["nothing/"]).passages == []


def _chunk(path: str, start: int, end: int, text: str) -> Chunk:
    return Chunk(id=f"{path}{start}", path=path, start_line=start, end_line=end, start_char=0,
                 end_char=0, text=text)


def test_adjacent_passages_of_one_file_merge(corpus_runtime: Runtime) -> None:
    from rag.models import Passage

    retriever = corpus_runtime.retriever
    path = "002_218709f738487987.txt"  # one paragraph per line, blank lines between
    a = Passage(chunk=_chunk(path, 53, 53, "line 53"), score=0.3)
    b = Passage(chunk=_chunk(path, 55, 55, "line 55"), score=0.5)  # line 54 is blank
    far = Passage(chunk=_chunk(path, 59, 59, "line 59"), score=0.2)  # 57 holds text
    merged = retriever.merge_neighbours([b, a, far])
    assert [(p.chunk.start_line, p.chunk.end_line) for p in merged] == [(53, 55), (59, 59)]
    assert merged[0].chunk.text == "line 53\n\nline 55" and merged[0].score == 0.5


def test_unfiltered_keyword_search_ranks_as_the_filtered_query_does(tmp_path: Path) -> None:
    """The unfiltered query ranks inside FTS5 (a cut before the join); a prefix that matches
    every path takes the other query.  Same hits, same order, ties broken by id."""
    from rag.adapters.lexical import LexicalIndex

    index = LexicalIndex(tmp_path / "lexical.sqlite")
    rows = [("alpha words here", i) for i in range(30)] + [("words", 30), ("other text", 31)]
    # inserted in reverse: rowid order (FTS5's own tie order) is not id order
    index.upsert([_chunk(f"f{n:02d}.txt", 1, 1, text) for text, n in reversed(rows)])
    for k in (1, 5, 29, 31):
        fast = index.search("alpha words", k)
        filtered = index.search("alpha words", k, [""])
        assert [c.id for c, _ in fast] == [c.id for c, _ in filtered]
        assert [s for _, s in fast] == [s for _, s in filtered]
        assert len(fast) == min(k, 31)
    # 30 equal scores: the cut keeps the smallest ids
    assert [c.id for c, _ in index.search("alpha", 3)] == ["f00.txt1", "f01.txt1", "f02.txt1"]


def test_keyword_statistics_follow_writes(tmp_path: Path) -> None:
    from rag.adapters.lexical import LexicalIndex

    index = LexicalIndex(tmp_path / "lexical.sqlite")
    index.upsert([_chunk("a.txt", 1, 1, "rare word"), _chunk("b.txt", 1, 1, "common")])
    before = index.idf(["rare"])["rare"]
    index.upsert([_chunk(f"c{i}.txt", 1, 1, "filler") for i in range(8)])  # more chunks
    assert index.idf(["rare"])["rare"] > before  # total re-counted, not cached
    index.delete([f"c{i}.txt1" for i in range(8)])
    assert index.idf(["rare"])["rare"] == before


def test_keyword_search_leaves_out_common_words_only_when_they_cost_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.adapters import lexical
    from rag.adapters.lexical import LexicalIndex

    index = LexicalIndex(tmp_path / "lexical.sqlite")
    chunks = [_chunk(f"f{n:02d}.txt", 1, 1, "the file was opened") for n in range(40)]
    chunks += [_chunk("zebra.txt", 1, 1, "zebra stripes"), _chunk("both.txt", 1, 1, "zebra file")]
    index.upsert(chunks)
    full = [c.path for c, _ in index.search("zebra file", 50)]
    assert len(full) == 42 and set(full[:2]) == {"both.txt", "zebra.txt"}

    monkeypatch.setattr(lexical, "KEYWORD_POSTINGS", 10)  # "file" (41 chunks) is too dear
    index.upsert([_chunk("fresh.txt", 1, 1, "unrelated")])  # statistics forgotten on write
    pruned = [c.path for c, _ in index.search("zebra file", 50)]
    assert sorted(pruned) == ["both.txt", "zebra.txt"]  # only what holds the rare word
    assert [c.path for c, _ in index.search("file", 50)][:1]  # a lone term is always kept
    assert len(index.search("opened file", 50)) == 40  # the rarest term kept, over budget


def test_vector_search_asks_for_more_than_there_is(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder, exact_search=False)
    runtime.ingest_service().ingest()
    total = runtime.store.count()
    got = runtime.store.query(embedder.encode_query(PUTIN_2000), total + 50)
    assert len(got) == total and len({p.chunk.id for p in got}) == total
    assert runtime.store.query(embedder.encode_query("x"), 5, ["no-such-file.txt"]) == []


@pytest.mark.parametrize("exact", [False, True])
def test_the_dense_legs_rows_come_from_the_keyword_index_then_chroma(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, exact: bool
) -> None:
    runtime = make_runtime(tmp_path, embedder, hybrid=False, exact_search=exact)
    runtime.ingest_service().ingest()
    retriever, vector = runtime.retriever, embedder.encode_query(PUTIN_2000)
    chroma = [p.chunk for p in runtime.store.query(vector, 20)]  # rows from Chroma
    assert len(chroma) == 20

    def got() -> list[Chunk]:
        return [p.chunk for p in retriever.search(PUTIN_2000, 5, merge=False).passages]

    assert got() == chroma[:5]
    asked: list[list[str]] = []
    chunks_for = runtime.store.chunks_for
    monkeypatch.setattr(
        runtime.store, "chunks_for", lambda ids: asked.append(ids) or chunks_for(ids)
    )
    assert got() == chroma[:5] and asked == []  # the keyword index had every row
    # An ingest between its two writes: rows Chroma has and the keyword index not yet.
    runtime.lexical.delete([chroma[0].id, chroma[3].id])
    assert got() == chroma[:5]
    assert sorted(asked[0]) == sorted([chroma[0].id, chroma[3].id])
    # A chunk deleted while the query ran: an id the vector index still gave, with no row.
    nearest = runtime.store.nearest
    monkeypatch.setattr(runtime.store, "nearest", lambda *a: [("gone-0", 0.99), *nearest(*a)])
    assert got() == chroma[:5]


def test_kept_rows_follow_writes(tmp_path: Path) -> None:
    from rag.adapters.lexical import LexicalIndex

    index = LexicalIndex(tmp_path / "k.sqlite")
    a, b = _chunk("a.txt", 1, 1, "alpha"), _chunk("b.txt", 1, 1, "beta")
    index.upsert([a, b])
    assert index.chunks([a.id, b.id, "nope"]) == {a.id: a, b.id: b}
    moved = a.model_copy(update={"start_line": 3, "end_line": 3})  # same id, lines shifted
    index.upsert([moved])
    assert index.chunks([a.id]) == {a.id: moved}
    index.delete([b.id])
    assert index.chunks([a.id, b.id]) == {a.id: moved}
    other = LexicalIndex(tmp_path / "k.sqlite")  # another process writes
    other.upsert([a])
    assert index.chunks([a.id]) == {a.id: moved}  # kept until told
    index.forget_cache()  # what the runtime does when the index's revision moves
    assert index.chunks([a.id]) == {a.id: a}


def test_keyword_search_failing_on_its_thread_fails_the_search(
    corpus_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    def broken(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(corpus_runtime.lexical, "search", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        corpus_runtime.retriever.search(PUTIN_2000, 5)


def test_sentence_vectors_stored_at_ingest_are_used(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 backend pools each sentence's vector from its chunk's embedding run at ingest;
    re-ranking reads them instead of running the model on retrieved sentences."""
    import numpy as np

    from rag.spans import context_spans, sentence_spans

    assert embedder.pools_in_context
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    chunks = runtime.store.all_chunks()
    stored = runtime.lexical.sentence_vectors([c.id for c in chunks])
    assert set(stored) == {c.id for c in chunks}
    for chunk in chunks[:10]:
        _, parts = embedder.encode_in_context([chunk.embed_text], [context_spans(chunk)])
        assert stored[chunk.id].shape == (len(sentence_spans(chunk)), embedder.dimension)
        assert np.allclose(stored[chunk.id], parts[0], atol=2e-3)  # float16 on disk
    found = runtime.answer_service.retrieve(PUTIN_2000, 5)

    def no_model(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        raise AssertionError("a stored sentence vector was computed again")

    runtime.refresh()  # a fresh answer service: nothing in memory
    monkeypatch.setattr(embedder, "encode_in_context", no_model)
    again = runtime.answer_service.retrieve(PUTIN_2000, 5)
    assert [p.chunk.id for p in again.passages] == [p.chunk.id for p in found.passages]
    monkeypatch.undo()

    # Without stored rows (an index from before, or rebuilt keyword index): computed on the
    # fly, rounded as stored ones are: the same ranking.
    runtime.lexical._db.execute("DELETE FROM sentence_vectors")
    runtime.refresh()
    computed = runtime.answer_service.retrieve(PUTIN_2000, 5)
    assert [(p.chunk.id, p.score) for p in computed.passages] == [
        (p.chunk.id, p.score) for p in found.passages
    ]


def test_sentence_vectors_follow_edits_and_deletes(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    service.ingest()
    rows = lambda: {r[0] for r in runtime.lexical._db.execute("SELECT id FROM sentence_vectors")}  # noqa: E731
    assert rows() == runtime.lexical.ids()
    doc = runtime.settings.corpus_dir / "002_218709f738487987.txt"
    doc.write_text("A new first line about sanctions.\n" + doc.read_text())
    report = service.ingest()
    assert report.chunks_embedded > 0 and report.chunks_reused > 0
    assert rows() == runtime.lexical.ids()  # stale rows gone, new ones written, reused kept
    doc.unlink()
    service.ingest(prune=True)
    assert rows() == runtime.lexical.ids()
    report = service.ingest(rebuild=True)  # a new generation: vectors carried, not embedded
    assert report.chunks_embedded == 0 and report.switched
    runtime.refresh()
    assert rows() == runtime.lexical.ids() and rows()
    # the keyword index out of step with Chroma: rebuilt from it, sentence vectors kept
    drop_three = "DELETE FROM chunks WHERE rowid IN (SELECT rowid FROM chunks LIMIT 3)"
    runtime.lexical._db.execute(drop_three)
    runtime.ingest_service().reconcile_lexical()
    assert runtime.lexical.ids() == set(runtime.store.collection.get(include=[])["ids"])
    assert rows() == runtime.lexical.ids()


def test_a_sentence_vector_pooled_over_a_whole_one_sentence_text_is_its_vector(
    embedder: Embedder,
) -> None:
    text = "Putin last visited North Korea in 2000."
    vectors, parts = embedder.encode_in_context([text], [[(0, len(text)), (0, 5)]])
    assert float(vectors[0] @ parts[0][0]) > 0.97  # all tokens but [CLS]/[SEP]
    assert float(vectors[0] @ parts[0][1]) < float(vectors[0] @ parts[0][0])  # "Putin" alone
