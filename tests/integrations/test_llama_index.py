"""rag as a llama-index retriever, with the real llama-index-core: in-process and against
uvicorn on loopback, alone and inside a RetrieverQueryEngine with llama-index's MockLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from rag.api.app import create_app
from rag.errors import InputError, RemoteError
from rag.integrations.llama_index import RagRetriever
from tests.api_support import LiveServer
from tests.conftest import PUTIN_2000, PUTIN_2000_LINES, REPO, make_runtime, sed_lines

KEY = "llama-index-test-key"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    runtime = make_runtime(
        tmp_path_factory.mktemp("llama-index"), embedder, llm_backend="extractive", api_key=KEY
    )
    runtime.ingest_service().ingest()
    return runtime


@pytest.fixture(scope="module")
def server(runtime: Any) -> Iterator[LiveServer]:
    with LiveServer(create_app(runtime.settings, runtime)) as live:
        yield live


def covers_putin_2000(metadata: dict[str, Any]) -> bool:
    return any(
        path == metadata["path"] and metadata["start_line"] <= line <= metadata["end_line"]
        for path, line in PUTIN_2000_LINES
    )


def check_nodes(nodes: list[Any], corpus: Path) -> None:
    assert nodes and covers_putin_2000(nodes[0].node.metadata)
    scores = [n.score for n in nodes]
    assert scores == sorted(scores, reverse=True)
    for hit in nodes:
        meta = hit.node.metadata
        lines = sed_lines(corpus / meta["path"])
        assert hit.node.get_content() == "\n".join(lines[meta["start_line"] - 1 : meta["end_line"]])
        assert meta["anchor"].startswith(f"{meta['path']}:L{meta['start_line']}")
        assert "page" in meta


def test_in_process_retriever(runtime: Any) -> None:
    nodes = RagRetriever(runtime=runtime, top_k=3).retrieve(PUTIN_2000)
    assert len(nodes) <= 3
    check_nodes(nodes, runtime.settings.corpus_dir)
    only = RagRetriever(runtime=runtime, paths=["001_"]).retrieve(PUTIN_2000)
    assert only and {n.node.metadata["path"][:4] for n in only} == {"001_"}


def test_server_retriever_gives_the_same_nodes(runtime: Any, server: LiveServer) -> None:
    remote = RagRetriever(url=server.url, api_key=KEY, top_k=4)
    nodes = remote.retrieve(PUTIN_2000)
    check_nodes(nodes, runtime.settings.corpus_dir)
    local = RagRetriever(runtime=runtime, top_k=4).retrieve(PUTIN_2000)
    assert [n.node.metadata for n in nodes] == [n.node.metadata for n in local]
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in local]
    remote.close()


def test_server_errors_become_rag_errors(server: LiveServer) -> None:
    with pytest.raises(RemoteError) as wrong:
        RagRetriever(url=server.url, api_key="wrong").retrieve(PUTIN_2000)
    assert wrong.value.http_status == 401 and wrong.value.remote_code == "unauthorized"
    assert "Bearer" in wrong.value.hint
    with pytest.raises(RemoteError, match="did not answer"):
        RagRetriever(url="http://127.0.0.1:9", api_key=KEY).retrieve(PUTIN_2000)
    with pytest.raises(InputError):
        RagRetriever()


def test_query_engine_cites_file_and_lines(runtime: Any, server: LiveServer) -> None:
    for retriever in (
        RagRetriever(runtime=runtime, top_k=3),
        RagRetriever(url=server.url, api_key=KEY, top_k=3),
    ):
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=16))
        response = engine.query(PUTIN_2000)
        assert response.response  # MockLLM's text: the engine ran end to end
        assert len(response.source_nodes) <= 3
        check_nodes(response.source_nodes, runtime.settings.corpus_dir)


def test_rag_does_not_import_llama_index_at_start_up() -> None:
    code = (
        "import sys, json; import rag.cli.main, rag.api.app, rag.runtime; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('llama_index'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []
    loaded = subprocess.run(
        [sys.executable, "-c", code.replace("rag.runtime;", "rag.integrations.llama_index;")],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "llama_index.core" in json.loads(loaded.stdout)  # the check can see an import
