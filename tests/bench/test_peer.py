"""bench/peer.py's scoring of llama-index's nodes: a node's character span becomes the lines
of its file that hold it (real llama-index pipeline over Chroma, the real embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.peer import Peer, corpus_files, line_of
from tests.conftest import CORPUS, sed_lines


def test_line_of() -> None:
    text = "ab\ncd\n\nef"
    assert [line_of(text, i) for i in (0, 2, 3, 6, 7, 8)] == [1, 1, 2, 3, 4, 4]


def test_peer_nodes_map_to_the_lines_that_hold_them(tmp_path: Path, embedder: Any) -> None:
    files = corpus_files(CORPUS)
    peer = Peer(embedder, files, tmp_path / "chroma")
    peer.ingest()
    assert peer.nodes >= len(files)
    hits = peer.retriever.retrieve("When did Putin last visit North Korea?")
    assert len(hits) == 5
    for hit in hits:
        where = peer.lines(hit.node)
        assert where is not None and where.end_line > where.start_line
        lines = sed_lines(CORPUS / where.file)[where.start_line - 1 : where.end_line]
        node = hit.node.get_content()
        assert node in "\n".join(lines)  # the lines hold the node...
        assert node not in "\n".join(lines[1:]) and node not in "\n".join(lines[:-1])  # tightly
