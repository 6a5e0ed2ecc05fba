"""Ingest into a real Chroma with the real model: anchors, stability, staleness, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from rag.adapters.embedder import Embedder
from rag.adapters.manifest import Manifest
from rag.adapters.store import ChromaStore, IndexInfo
from rag.errors import EmptyCorpusError, IndexMismatchError, IndexMissingError, InputError
from rag.indexing import ingest as ingest_module
from rag.runtime import Runtime
from tests.conftest import CORPUS, make_runtime, sed_lines


def _all_chunks(store: ChromaStore) -> list[dict[str, Any]]:
    got = store.collection.get(include=["documents", "metadatas"])
    return [
        {"id": i, "text": d, **m}
        for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
    ]


def test_corpus_chunks_carry_exact_line_anchors(corpus_runtime: Runtime) -> None:
    store = corpus_runtime.store
    chunks = _all_chunks(store)
    manifest = Manifest.load(corpus_runtime.settings.index_dir)
    assert len(chunks) == store.count() == manifest.chunk_count > 0
    assert sorted(manifest.files) == sorted(p.name for p in CORPUS.glob("*.txt"))
    assert {c["path"] for c in chunks} == set(manifest.files)
    covered: dict[str, set[int]] = {}
    for c in chunks:
        lines = sed_lines(corpus_runtime.settings.corpus_dir / c["path"])
        assert c["text"] == "\n".join(lines[c["start_line"] - 1 : c["end_line"]])
        covered.setdefault(c["path"], set()).update(range(c["start_line"], c["end_line"] + 1))
    for name in manifest.files:
        lines = sed_lines(CORPUS / name)
        nonblank = {i for i, line in enumerate(lines, start=1) if line.strip()}
        assert nonblank <= covered[name]


def test_reingest_is_a_no_op_and_edits_replace_old_text(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    first = service.ingest()
    ids_before = {c["id"] for c in _all_chunks(runtime.store)}
    again = service.ingest()
    assert again.files_indexed == 0 and again.files_unchanged == first.files_indexed == 5
    assert {c["id"] for c in _all_chunks(runtime.store)} == ids_before
    assert service.stale_reason() is None

    doc = runtime.settings.corpus_dir / "003_04a47c1ca7d95a89.txt"
    text = doc.read_text(encoding="utf-8")
    doc.write_text("A new first line about zebras.\n" + text.replace("July 2000", "July 1999"))
    assert service.stale_reason() == "changed document 003_04a47c1ca7d95a89.txt"
    report = service.ingest()
    assert report.files_indexed == 1 and report.chunks_deleted >= 1
    chunks = [c for c in _all_chunks(runtime.store) if c["path"] == doc.name]
    assert not any("July 2000" in c["text"] for c in chunks)  # no stale text left behind
    assert any("July 1999" in c["text"] for c in chunks)
    lines = sed_lines(doc)
    for c in chunks:
        assert c["text"] == "\n".join(lines[c["start_line"] - 1 : c["end_line"]])
    assert runtime.store.count() == Manifest.load(runtime.settings.index_dir).chunk_count


def test_prune_removes_documents_gone_from_disk(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    service.ingest()
    gone = runtime.settings.corpus_dir / "000_2f75ad98d5781bb4.txt"
    gone.unlink()
    assert service.stale_reason() is not None
    report = service.ingest(prune=True)
    assert report.files_removed == 1
    assert not any(c["path"] == gone.name for c in _all_chunks(runtime.store))
    assert service.stale_reason() is None


@pytest.mark.parametrize("prune", [False, True])
def test_a_file_that_turns_unreadable_loses_its_chunks(
    tmp_path: Path, embedder: Embedder, prune: bool
) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    service.ingest()
    victim = runtime.settings.corpus_dir / "000_2f75ad98d5781bb4.txt"
    victim.write_bytes(b"\x00\x01binary now\x00" * 64)  # replaced by a binary
    report = service.ingest(prune=prune)
    assert report.files_removed == 1 and any(victim.name in n for n in report.notes), report
    assert not any(c["path"] == victim.name for c in _all_chunks(runtime.store))
    assert victim.name not in Manifest.load(runtime.settings.index_dir).files


def test_small_upsert_batches(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    runtime.store.batch_size = 7  # as if Chroma's max batch were tiny
    report = runtime.ingest_service().ingest()
    assert runtime.store.count() == report.chunks_written > 7


def test_a_build_reads_the_corpus_a_batch_at_a_time(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are read, embedded and written in batches, so a big build holds one batch in
    memory: the first file is written before the last is read, and the index is the one a
    single batch builds."""
    whole = make_runtime(tmp_path / "whole", embedder)
    whole.ingest_service().ingest()
    events: list[tuple[str, str, int]] = []

    class Record:
        def start(self, phase: str, total: int) -> None:
            events.append(("start", phase, total))

        def advance(self, phase: str, n: int = 1) -> None:
            events.append(("advance", phase, n))

        def warn(self, message: str) -> None: ...

    monkeypatch.setattr(ingest_module, "BATCH_CHUNKS", 3)  # the sample files hold 4-9 chunks
    batched = make_runtime(tmp_path / "batched", embedder)
    report = batched.ingest_service(Record()).ingest()
    reads = [i for i, e in enumerate(events) if e[:2] == ("advance", "read")]
    embeds = [i for i, e in enumerate(events) if e[:2] == ("advance", "embed")]
    assert len(reads) == report.files_indexed == 5
    assert embeds[0] < reads[1] and reads[-1] < embeds[-1]  # read, embed, read, embed ...
    starts = [e[2] for e in events if e[:2] == ("start", "embed")]
    assert len(starts) == 5 and sum(starts) == report.chunks_embedded  # the bar's total grows
    assert {c["id"]: c["text"] for c in _all_chunks(batched.store)} == {
        c["id"]: c["text"] for c in _all_chunks(whole.store)
    }
    assert batched.lexical.count() == whole.lexical.count() == report.chunks_total
    assert batched.ingest_service().stale_reason() is None


def test_missing_path_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, embedder: Embedder
) -> None:
    runtime = make_runtime(tmp_path, embedder)
    with pytest.raises(InputError, match=r"no such file or folder: .*nowhere"):
        runtime.ingest_service().ingest([tmp_path / "nowhere"])
    assert not (runtime.settings.index_dir / "manifest.json").exists()
    assert not runtime.store.exists()


def test_empty_folder_is_a_clear_error(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpusError, match="no files found"):
        runtime.ingest_service().ingest([tmp_path / "empty"])
    assert not runtime.store.exists()


def test_binary_files_are_skipped_and_latin1_is_read_with_a_warning(
    tmp_path: Path, embedder: Embedder
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "image.dat").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "photo.png").write_bytes(b"not really a png")
    (docs / "notes.md").write_text("# Notes\n\nThe treaty was signed in Pyongyang.\n")
    warnings: list[str] = []

    class Recorder:
        def start(self, phase: str, total: int) -> None: ...
        def advance(self, phase: str, n: int = 1) -> None: ...
        def warn(self, message: str) -> None:
            warnings.append(message)

    runtime = make_runtime(tmp_path, embedder, corpus=docs)
    report = runtime.ingest_service(Recorder()).ingest()
    assert report.files_indexed == 2
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"image.dat", "photo.png"}
    assert reasons["image.dat"].startswith("binary file")
    assert reasons["photo.png"].startswith("unsupported format")
    assert any("latin1.txt" in w and "Latin-1" in w for w in warnings), warnings
    assert any("image.dat" in w for w in warnings)
    texts = [c.text for c in runtime.store.all_chunks() if c.path == "latin1.txt"]
    assert texts == ["caf\xe9 cr\xe8me"]


def test_only_unreadable_files_is_an_error_not_an_empty_index(
    tmp_path: Path, embedder: Embedder
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "blob.bin").write_bytes(b"\x00\x01\x02")
    runtime = make_runtime(tmp_path, embedder, corpus=docs)
    with pytest.raises(EmptyCorpusError, match=r"no readable text.*blob\.bin: unsupported format"):
        runtime.ingest_service().ingest()
    assert not runtime.store.exists()


def test_file_over_the_size_limit_is_skipped(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "huge.txt").write_text("word " * (5 * 2**20 // 5))  # 5 MiB, a single line
    (docs / "small.txt").write_text("A small document.\n")
    runtime = make_runtime(tmp_path, embedder, corpus=docs, max_file_mb=1)
    report = runtime.ingest_service().ingest()
    assert [s.path for s in report.skipped] == ["huge.txt"]
    assert "too large (5.0 MiB > 1.0 MiB" in report.skipped[0].reason


def test_index_built_with_another_model_is_refused(corpus_runtime: Runtime) -> None:
    info = corpus_runtime.index_info
    other = IndexInfo("some-other-model", info.embedding_dim, info.chunker)
    store = ChromaStore(corpus_runtime.settings, other, corpus_runtime.store.name)
    with pytest.raises(IndexMismatchError) as caught:
        store.open()
    assert "sentence-transformers/all-MiniLM-L6-v2" in caught.value.message
    assert "rag ingest --rebuild" in caught.value.hint


def test_opening_a_missing_index_says_how_to_build_it(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    with pytest.raises(IndexMissingError) as caught:
        runtime.store.open()
    assert "rag ingest" in caught.value.hint


def test_rebuild_starts_from_scratch(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    service.ingest()
    count = runtime.store.count()
    shutil.rmtree(runtime.settings.corpus_dir)
    runtime.settings.corpus_dir.mkdir()
    (runtime.settings.corpus_dir / "one.txt").write_text("Only this.\n")
    report = service.ingest(rebuild=True)
    assert report.chunks_total == runtime.store.count() == 1 < count


def test_the_first_files_are_embedded_while_the_next_are_read(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are read and chunked on a helper thread ahead of the embedding: the embedding
    of the first batch does not wait for the last file (a slow disk here: 0.3 s a file)."""
    import time

    runtime = make_runtime(tmp_path, embedder, ingest_group=2)
    events: list[tuple[str, float]] = []
    read = ingest_module.read

    def slow_read(source: Any, max_bytes: int) -> Any:
        time.sleep(0.3)
        events.append(("read", time.perf_counter()))
        return read(source, max_bytes)

    encode = embedder.encode_in_context

    def recorded(*args: Any, **kwargs: Any) -> Any:
        events.append(("embed", time.perf_counter()))
        return encode(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "read", slow_read)
    monkeypatch.setattr(embedder, "encode_in_context", recorded)
    report = runtime.ingest_service().ingest()
    assert report.files_indexed == 5
    reads = [t for kind, t in events if kind == "read"]
    first_embed = min(t for kind, t in events if kind == "embed")
    assert len(reads) == 5 and first_embed < reads[-1]
    assert runtime.store.count() == runtime.lexical.count() > 0
