"""The index stays true: crash points, one writer, torn manifests, generations, reuse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rag.adapters.embedder import Embedder
from rag.adapters.generations import GenerationStores
from rag.adapters.lock import IndexLock
from rag.adapters.manifest import ACTIVE_FILE, FILE_NAME, Manifest
from rag.errors import IndexLockedError, IndexMissingError, IndexStateError, ManifestDamagedError
from tests.conftest import CORPUS, REPO, make_runtime
from tests.crash_check import check


class Crash(BaseException):
    """Stands in for the process dying at one point (not an Exception: nothing catches it)."""


def _small_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    for article in sorted(CORPUS.glob("*.txt"))[:2]:
        lines = article.read_text().splitlines()
        for i in range(0, min(len(lines), 24), 8):
            (corpus / f"{article.stem}_{i}.txt").write_text("\n".join(lines[i : i + 8]) + "\n")
    return corpus


WRITES = [
    ("manifest", "put_file"),
    ("manifest", "set_status"),
    ("manifest", "remove_file"),
    ("manifest", "activate"),
    ("store", "upsert"),
    ("store", "delete"),
    ("lexical", "upsert"),
    ("lexical", "delete"),
]


def _indexed_copy(base: Path, work: Path, embedder: Embedder) -> tuple[Path, Path]:
    """``base`` copied to ``work/corpus`` and indexed in ``work``: (work, corpus)."""
    corpus = work / "corpus"
    shutil.copytree(base, corpus)
    seed = make_runtime(work, embedder, corpus=corpus)
    seed.ingest_service().ingest()
    seed.manifest.close()
    return work, corpus


def _arm(runtime: Any, crash_at: int) -> list[str]:
    """Make the ``crash_at``-th write (counting every write method above) raise Crash."""
    seen: list[str] = []

    def wrap(obj: Any, name: str) -> None:
        original = getattr(obj, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            if len(seen) == crash_at:
                raise Crash(name)
            return original(*args, **kwargs)

        setattr(obj, name, wrapper)

    class ArmedStores(GenerationStores):
        def __call__(self, gen: Any) -> Any:
            store, lexical = super().__call__(gen)
            for target, name in WRITES:
                obj = {"store": store, "lexical": lexical}.get(target)
                if obj is not None and name not in obj.__dict__:
                    wrap(obj, name)
            return store, lexical

    for target, name in WRITES:
        if target == "manifest":
            wrap(runtime.manifest, name)
    runtime.stores = ArmedStores(runtime.settings)
    return seen


def test_a_crash_at_every_write_leaves_a_recoverable_index(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Exhaustive crash points over an incremental ingest (edit, add, delete, rename)."""
    base = _small_corpus(tmp_path)
    files = sorted(base.glob("*.txt"))
    points, crashed = 0, 0
    while True:
        points += 1
        work, corpus = _indexed_copy(base, tmp_path / f"run{points}", embedder)
        edited = corpus / files[0].name
        edited.write_text("A new first line.\n" + edited.read_text())
        (corpus / files[1].name).unlink()
        (corpus / files[2].name).rename(corpus / "renamed.txt")
        (corpus / "new.txt").write_text("A brand new document about the treaty.\n")
        runtime = make_runtime(work, embedder, corpus=corpus)
        seen = _arm(runtime, points)
        try:
            runtime.ingest_service().ingest(prune=True)
        except Crash:
            crashed += 1
        else:
            assert len(seen) < points  # ran to the end: every write point was tried
            break
        finally:
            runtime.manifest.close()
        result = check(work / "index", corpus)
        assert result["violations"] == [], (points, seen[-1], result)
        # and a re-ingest finishes the job
        again = make_runtime(work, embedder, corpus=corpus)
        again.ingest_service().ingest(prune=True)
        final = check(work / "index", corpus)
        (active,) = [g for g in final["generations"] if g["state"] == "active"]
        assert set(active["files"]) == {p.name for p in corpus.glob("*.txt")}
        assert set(active["files"].values()) == {"complete"}
        again.manifest.close()
        shutil.rmtree(work)
    assert crashed >= 20, crashed


def _record_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ChromaStore.ids_for_path call (a scan of Chroma's metadata), by path."""
    from rag.adapters.store import ChromaStore

    asked: list[str] = []
    original = ChromaStore.ids_for_path

    def recording(self: ChromaStore, path: str) -> list[str]:
        asked.append(path)
        return original(self, path)

    monkeypatch.setattr(ChromaStore, "ids_for_path", recording)
    return asked


def test_a_crash_while_deleting_a_document_leaves_no_chunk_behind_its_next_version(
    tmp_path: Path, embedder: Embedder
) -> None:
    """A kill between unlisting a file and deleting its chunks leaves them unlisted; the
    index is marked dirty meanwhile, so the next write removes them before a new version
    of the file is written (which no longer asks Chroma for a new file's old chunks)."""
    base = _small_corpus(tmp_path)
    name = sorted(base.glob("*.txt"))[0].name
    for points in (1, 2, 3, 4):
        work, corpus = _indexed_copy(base, tmp_path / f"run{points}", embedder)
        runtime = make_runtime(work, embedder, corpus=corpus)
        seen = _arm(runtime, points)
        try:
            runtime.ingest_service().delete_document(name)
        except Crash:
            assert runtime.manifest.get_meta("dirty") is not None, seen
        finally:
            runtime.manifest.close()
        (corpus / name).write_text("A different text under the old name.\n")
        again = make_runtime(work, embedder, corpus=corpus)
        again.ingest_service().ingest()
        files = again.manifest.files(again.manifest.active().id)
        listed = {c for entry in files.values() for c in entry.chunk_ids}
        assert again.store.all_ids() == listed, (points, seen)  # nothing of the old version
        assert check(work / "index", corpus)["violations"] == [], points
        again.manifest.close()


def test_a_fresh_build_never_asks_chroma_for_a_new_files_old_chunks(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _record_lookups(monkeypatch)
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    assert runtime.store.count() > 0 and asked == []
    edited = sorted(runtime.settings.corpus_dir.glob("*.txt"))[0]
    edited.write_text("A new first line.\n" + edited.read_text())
    runtime.ingest_service().ingest()
    assert asked == [edited.name]  # a changed file: its stored chunks are looked up


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, embedder: Embedder) -> None:
    runtime = make_runtime(tmp_path, embedder, lock_wait=1.0)
    index = runtime.settings.index_dir
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from rag.adapters.lock import IndexLock\n"
            f"IndexLock(Path({str(index)!r}), 'rag ingest --watch').acquire()\n"
            "print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(IndexLockedError) as caught:
            runtime.ingest_service().ingest()
        waited = time.monotonic() - started
        assert 0.9 <= waited < 5
        assert f"pid {holder.pid}" in caught.value.message
        assert "`rag ingest --watch`" in caught.value.message
        assert not (index / FILE_NAME).exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with its holder: the next writer gets in
    runtime.ingest_service().ingest()
    assert runtime.store.count() > 0


def test_the_lock_is_shared_within_one_process(tmp_path: Path) -> None:
    with IndexLock(tmp_path, "outer"), IndexLock(tmp_path, "inner", timeout=0):
        pass
    with IndexLock(tmp_path, "again", timeout=0):
        pass


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_torn_manifest_is_detected_and_rebuilt_from_chroma(
    tmp_path: Path,
    embedder: Embedder,
    damage: str,
) -> None:
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    count = runtime.store.count()
    listed = sorted(Manifest.load(runtime.settings.index_dir).files)
    runtime.manifest.close()
    path = runtime.settings.index_dir / FILE_NAME
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(data[:100] + os.urandom(4096) + data[4196:])

    with pytest.raises(ManifestDamagedError) as caught:  # readers never see "empty"
        Manifest.load(runtime.settings.index_dir)
    assert "rag ingest" in caught.value.hint
    fresh = make_runtime(tmp_path, embedder)
    assert "damaged" in (fresh.ingest_service().stale_reason() or "")
    report = fresh.ingest_service().ingest()
    assert any("rebuilt it from the vector index" in n for n in report.notes), report.notes
    assert report.chunks_embedded == 0  # every vector was still there
    assert report.files_indexed == len(listed)  # verified against the files
    assert sorted(Manifest.load(runtime.settings.index_dir).files) == listed
    assert fresh.store.count() == count
    assert list(runtime.settings.index_dir.glob(f"{FILE_NAME}.damaged-*"))
    assert fresh.ingest_service().stale_reason() is None


def test_a_torn_manifest_without_a_record_of_the_index_says_what_to_do(
    tmp_path: Path,
    embedder: Embedder,
) -> None:
    runtime = make_runtime(tmp_path, embedder)
    runtime.ingest_service().ingest()
    runtime.manifest.close()
    (runtime.settings.index_dir / FILE_NAME).write_bytes(b"")
    (runtime.settings.index_dir / ACTIVE_FILE).unlink()
    with pytest.raises(IndexStateError) as caught:
        make_runtime(tmp_path, embedder).ingest_service().ingest()
    assert "damaged" in caught.value.message
    assert "rag ingest --rebuild" in caught.value.hint
    report = make_runtime(tmp_path, embedder).ingest_service().ingest(rebuild=True)
    assert report.switched and report.files_indexed == 5


def test_an_edit_re_embeds_only_changed_chunks_and_leaves_no_old_text(
    tmp_path: Path,
    embedder: Embedder,
) -> None:
    runtime = make_runtime(tmp_path, embedder)
    service = runtime.ingest_service()
    first = service.ingest()
    assert first.chunks_embedded == first.chunks_written > 30
    again = service.ingest()
    assert (again.chunks_embedded, again.files_indexed, again.files_unchanged) == (0, 0, 5)
    doc = sorted(runtime.settings.corpus_dir.glob("*.txt"))[0]
    lines = doc.read_text().splitlines()
    old_line = lines[-1]
    lines.insert(0, "Zanzibar flamingos attended the summit.")
    lines[-1] = "The article ended differently."
    doc.write_text("\n".join(lines) + "\n")
    report = service.ingest()
    assert report.files_indexed == 1
    assert 1 <= report.chunks_embedded <= 2 < report.chunks_written
    assert report.chunks_reused == report.chunks_written - report.chunks_embedded
    chunks = [c for c in runtime.store.all_chunks() if c.path == doc.name]
    assert min(c.start_line for c in chunks) == 1  # line numbers moved with the text
    assert not any(old_line in c.text for c in chunks if old_line.strip())
    hits = runtime.retriever.search("Zanzibar flamingos", 3).passages
    assert hits[0].chunk.path == doc.name and hits[0].chunk.start_line == 1


def test_an_interrupted_first_ingest_is_reported_and_finished(
    tmp_path: Path, embedder: Embedder
) -> None:
    class Stop:
        def start(self, phase: str, total: int) -> None: ...
        def warn(self, message: str) -> None: ...
        def advance(self, phase: str, n: int = 1) -> None:
            if phase == "embed":
                raise KeyboardInterrupt

    runtime = make_runtime(tmp_path, embedder, ingest_group=16)
    with pytest.raises(KeyboardInterrupt):
        runtime.ingest_service(Stop()).ingest()
    with pytest.raises(IndexMissingError) as caught:
        make_runtime(tmp_path, embedder).store.open()
    assert "not complete yet" in caught.value.message
    assert make_runtime(tmp_path, embedder).ingest_service().stale_reason() == (
        "an ingest was interrupted"
    )
    report = make_runtime(tmp_path, embedder).ingest_service().ingest()
    assert report.switched and report.files_indexed == 5


def test_a_chunker_change_builds_beside_the_old_index_and_switches_when_done(
    tmp_path: Path,
    embedder: Embedder,
) -> None:
    old = make_runtime(tmp_path, embedder, chunk_size=128)
    old.ingest_service().ingest()
    old_gen = old.generation
    old_count = old.store.count()
    question = "Where did Putin and Kim sign the agreement?"
    before = [p.chunk.id for p in old.retriever.search(question, 5).passages]

    building, release, answers = threading.Event(), threading.Event(), []

    class Pause:
        def start(self, phase: str, total: int) -> None:
            if phase == "embed":
                building.set()
                release.wait(60)

        def advance(self, phase: str, n: int = 1) -> None: ...
        def warn(self, message: str) -> None: ...

    new = make_runtime(tmp_path, embedder, chunk_size=48)
    assert new.ingest_service().stale_reason() == (
        "the index was built with other embedding or chunking settings"
    )
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(new.ingest_service(Pause()).ingest()))
    worker.start()
    assert building.wait(60)
    # meanwhile, queries keep working on the old generation
    answers.append([p.chunk.id for p in old.retriever.search(question, 5).passages])
    assert Manifest.load(old.settings.index_dir).generation == old_gen.id  # type: ignore[union-attr]
    release.set()
    worker.join(120)
    (report,) = result
    assert report.switched and report.generation != old_gen.id  # type: ignore[union-attr]
    assert answers == [before]
    assert Manifest.load(new.settings.index_dir).generation == report.generation
    assert new.store.count() > old_count  # smaller chunks, more of them
    assert not (old.settings.index_dir / old_gen.lexical).exists()  # type: ignore[union-attr]
    assert not old.store.exists()  # the old collection is gone after the switch
    old.refresh()
    assert old.generation.id == report.generation  # type: ignore[union-attr]
    assert old.retriever.search(question, 5).passages


def test_an_index_built_with_torch_keeps_answering_until_int8_replaces_it(
    tmp_path: Path, torch_embedder: Embedder, embedder: Embedder
) -> None:
    """What an upgrade meets: an index embedded with the old default (torch fp32) is queried
    with torch until `rag ingest` has built the int8 one beside it and switched."""
    from tests.conftest import PUTIN_2000, make_runtime

    old = make_runtime(
        tmp_path, torch_embedder, embedding_backend="torch", llm_backend="extractive"
    )
    old.ingest_service().ingest()
    assert old.generation is not None and not old.generation.embedding_model.endswith("+onnx-int8")
    answer = old.answer_service.ask(PUTIN_2000)
    assert "2000" in answer.answer and answer.citations  # the torch path answers too

    new = make_runtime(tmp_path, embedder, llm_backend="extractive")  # the default: int8
    assert new.ingest_service().stale_reason() == (
        "the index was built with other embedding or chunking settings"
    )
    assert new.query_embedder.model_id == old.generation.embedding_model  # torch, for now
    assert "2000" in new.answer_service.ask(PUTIN_2000).answer
    new.ingest_service().ingest()
    new.refresh()
    assert new.generation is not None and new.generation.embedding_model.endswith("+onnx-int8")
    assert new.query_embedder is embedder
    assert "2000" in new.answer_service.ask(PUTIN_2000).answer


def test_a_build_killed_before_its_collection_existed_is_dropped_and_started_again(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Found by the kill -9 suite: a kill between writing the new generation's row and
    creating its collection left a `building` generation without a collection."""
    old = make_runtime(tmp_path, embedder, chunk_size=128)
    old.ingest_service().ingest()
    new = make_runtime(tmp_path, embedder, chunk_size=48)
    w = new.index_info
    new.manifest.connect(create=True)
    gen = new.manifest.new_generation(
        w.embedding_model, w.embedding_dim, w.chunker, new.settings.collection
    )  # ... and killed here
    assert not new.stores(gen)[0].exists()
    new.ingest_service().check()
    assert new.manifest.building() is None
    assert [g.id for g in new.manifest.generations()] == [old.generation.id]  # type: ignore[union-attr]
    report = new.ingest_service().ingest()
    assert report.switched and new.manifest.active().chunker == w.chunker  # type: ignore[union-attr]
