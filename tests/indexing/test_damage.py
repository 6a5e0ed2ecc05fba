"""A damaged index, damaged for real on disk: a zeroed page of the keyword store or of Chroma's
database, cut HNSW files, a cut ``index_metadata.pickle``.  Each is reported by name (status,
the read side), never read as if whole, and ``rag ingest --rebuild`` heals it from the
documents, keeping the damaged files aside."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag.adapters.embedder import Embedder
from rag.adapters.store import release_clients
from rag.errors import IndexDamagedError
from rag.indexing.status import index_status
from rag.runtime import Runtime
from tests.conftest import PUTIN_2000, PUTIN_2000_LINES, make_runtime

PAGE = 4096


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """The sample corpus indexed once; each test damages its own copy."""
    home = tmp_path_factory.mktemp("damage-template")
    runtime = make_runtime(home, embedder, llm_backend="extractive")
    runtime.ingest_service().ingest()
    gen = runtime.manifest.active()
    assert gen is not None
    runtime.stores(gen)[1].close()  # checkpointed: the copy is whole without its -wal
    runtime.manifest.close()
    release_clients()
    return home


def _copy(template: Path, tmp: Path, embedder: Embedder) -> Runtime:
    shutil.copytree(template / "index", tmp / "index")
    shutil.copytree(template / "corpus", tmp / "corpus")
    return make_runtime(tmp, embedder, llm_backend="extractive")


def zero_page(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\0" * PAGE)


def _hnsw_persisted(runtime: Runtime) -> Path:
    """Chroma writes HNSW files only past its sync threshold (1,000 vectors): add 1,000 unit
    vectors to the active collection (unlisted: the rebuild drops them), return the folder."""
    from rag.models import Chunk

    gen = runtime.manifest.active()
    assert gen is not None
    store = runtime.stores(gen)[0]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1000, gen.embedding_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            id=f"filler-{i}",
            path="filler.txt",
            start_line=i + 1,
            end_line=i + 1,
            start_char=0,
            end_char=1,
            text="x",
        )
        for i in range(1000)
    ]
    store.upsert(chunks, vectors)
    runtime.manifest.close()
    release_clients()
    folders = [p for p in (runtime.settings.chroma_path).iterdir() if (p / "header.bin").exists()]
    assert len(folders) == 1 and (folders[0] / "index_metadata.pickle").exists()
    return folders[0]


def _cut_hnsw(runtime: Runtime) -> None:
    for path in sorted(_hnsw_persisted(runtime).glob("*.bin")):
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)


def _cut_pickle(runtime: Runtime) -> None:
    path = _hnsw_persisted(runtime) / "index_metadata.pickle"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(Exception):  # noqa: B017 (any failure to unpickle: it is cut)
        pickle.loads(path.read_bytes())


DAMAGE: dict[str, tuple[Callable[[Runtime], None], str, bool]] = {
    # name: (how, what the report names, are the vectors reused by the rebuild)
    "keyword page": (
        lambda rt: zero_page(rt.settings.index_dir / "lexical-g1.sqlite", 135168),
        "the keyword index",
        True,
    ),
    "chroma page": (
        lambda rt: zero_page(rt.settings.chroma_path / "chroma.sqlite3", 135168),
        "Chroma's database",
        False,
    ),
    "hnsw cut": (_cut_hnsw, "Chroma's vector index", False),
    "pickle cut": (_cut_pickle, "index_metadata.pickle", False),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_named_and_rebuild_heals_it(
    kind: str, template: Path, tmp_path: Path, embedder: Embedder
) -> None:
    damage, named, reused = DAMAGE[kind]
    damage(_copy(template, tmp_path, embedder))
    runtime = make_runtime(tmp_path, embedder, llm_backend="extractive")

    status = index_status(runtime.ingest_service())
    assert not status.in_sync and status.damaged, status
    assert any(named in d for d in status.damaged), status.damaged
    assert any("run `rag ingest --rebuild`" in r for r in status.out_of_sync)
    assert (runtime.ingest_service().stale_reason() or "").startswith("damaged: ")

    with pytest.raises(IndexDamagedError) as raised:  # never read as if whole
        runtime.answer_service.ask(PUTIN_2000)
    assert raised.value.message.startswith("damaged: ") and named in raised.value.message
    assert "rag ingest --rebuild" in raised.value.hint
    with pytest.raises(IndexDamagedError):  # an incremental ingest does not write into it
        runtime.ingest_service().ingest()

    report = runtime.ingest_service().ingest(rebuild=True)
    assert report.switched and any(n.startswith("damaged: ") for n in report.notes), report
    assert (report.chunks_reused > 0) == reused and report.chunks_total > 0, report
    aside = list(runtime.settings.index_dir.glob("damaged-*"))
    assert len(aside) == 1 and any(aside[0].iterdir())  # kept for inspection

    healed = make_runtime(tmp_path, embedder, llm_backend="extractive")
    status = index_status(healed.ingest_service(), full=True)
    assert status.in_sync and not status.damaged, status
    answer = healed.answer_service.ask(PUTIN_2000)
    assert {(c.path, c.start_line) for c in answer.citations} & PUTIN_2000_LINES


def test_the_full_check_reads_vectors_back(
    template: Path, tmp_path: Path, embedder: Embedder
) -> None:
    runtime = _copy(template, tmp_path, embedder)
    status = index_status(runtime.ingest_service(), full=True)
    assert status.checked == "full" and status.in_sync and not status.damaged, status


def test_a_damaged_keyword_index_read_anyway_names_the_file(
    template: Path, tmp_path: Path, embedder: Embedder
) -> None:
    from rag.adapters.lexical import LexicalIndex

    runtime = _copy(template, tmp_path, embedder)
    path = runtime.settings.index_dir / "lexical-g1.sqlite"
    zero_page(path, 135168)
    lexical = LexicalIndex(path)  # opened without the check (what a running reader holds)
    with pytest.raises(IndexDamagedError) as raised:  # the page holds sentence vectors
        lexical.sentence_vectors(sorted(lexical.ids()))
    assert raised.value.message.startswith(f"damaged: the keyword index {path}")
    assert "rag ingest --rebuild" in raised.value.hint
