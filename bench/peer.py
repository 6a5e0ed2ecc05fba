"""llama-index's default pipeline as the measured peer on the SQuAD benchmark, beside rag.

    python -m bench.peer [--squad DIR] [--questions N] [--out FILE] [--work DIR]

The peer is what a llama-index tutorial builds: the files as plain ``Document``s,
``SentenceSplitter()`` with its defaults, ``VectorStoreIndex`` over Chroma
(llama-index-vector-stores-chroma, a persistent client in a temporary folder), top-k 5, with
the same embedding model as rag (rag's own ``Embedder``, wrapped as a llama-index
``BaseEmbedding``: the packaged MiniLM, no downloads).  rag runs in the same process on the
same corpus, with the extractive backend.

Both are scored with rag's metrics (rag/evaluation/metrics.py) over the answerable
questions: a peer node maps its character span in its document to lines, a hit when those
lines overlap the evidence lines; its citation is its whole line range.  The peer's
citations are all the nodes it retrieved (``response.source_nodes``, what a llama-index app
shows as sources); ``peer_top1`` also scores its first node alone.  Speeds are measured
interleaved in one run and reported as ratios (rag / peer): ingest (median of three fresh
builds each, the model loaded beforehand) and query p50 (retrieval of the top 5).

Needs the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.stats import summary
from rag.adapters.embedder import Embedder
from rag.config import Settings
from rag.evaluation import metrics as m
from rag.evaluation.golden import GoldenQuestion, load_golden
from rag.runtime import Runtime

log = logging.getLogger("bench.peer")
ROOT = Path(__file__).resolve().parent.parent
SQUAD_DIR = ROOT.parent / "shared" / "benchmarks" / "squad"
TOP_K = 5
INGEST_ROUNDS = 3


@dataclass
class Scored:
    """One system's per-question results over the answerable questions."""

    ranks: list[int | None] = field(default_factory=list)
    citations: list[m.CitationScore] = field(default_factory=list)
    query_s: list[float] = field(default_factory=list)
    answered_unanswerable: int = 0  # unanswerable questions answered (not abstained)
    unanswerable: int = 0

    def metrics(self) -> dict[str, Any]:
        cites = m.aggregate_citations(self.citations)
        return {
            "recall@1": round(m.recall_at_k(self.ranks, 1), 4),
            "recall@5": round(m.recall_at_k(self.ranks, 5), 4),
            "mrr": round(m.mrr(self.ranks), 4),
            "citation_precision": round(cites["citation_precision"], 4),
            "citation_line_precision": round(cites["citation_line_precision"], 4),
            "citations_per_answer": round(
                sum(c.cited for c in self.citations) / max(1, len(self.citations)), 2
            ),
            "answered_unanswerable": round(
                self.answered_unanswerable / self.unanswerable, 4
            ) if self.unanswerable else None,
            "query": summary(self.query_s),
        }  # fmt: skip


# -- the corpus ---------------------------------------------------------------------------
def corpus_files(corpus: Path) -> dict[str, str]:
    """Relative path -> text, for every .txt file (as both systems read them)."""
    return {
        p.relative_to(corpus).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(corpus.rglob("*.txt"))
    }


def line_of(text: str, offset: int) -> int:
    """The 1-based line holding character ``offset`` of ``text``."""
    return text.count("\n", 0, max(0, offset)) + 1


# -- the peer: llama-index's default pipeline -----------------------------------------------
def rag_embedding(embedder: Embedder) -> Any:
    """rag's embedder as a llama-index ``BaseEmbedding`` (same model, same vectors)."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class RagEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
            super().__init__(model_name=embedder.model_id, **kwargs)
            self._embedder = embedder

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._embedder.encode_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in row] for row in self._embedder.encode(texts)]

    return RagEmbedding(embedder)


class Peer:
    """llama-index's default pipeline over Chroma in ``folder``."""

    def __init__(self, embedder: Embedder, files: dict[str, str], folder: Path) -> None:
        self.embed_model = rag_embedding(embedder)
        self.files = files
        self.folder = folder
        self.retriever: Any = None
        self.nodes = 0

    def ingest(self) -> None:
        import chromadb
        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(path=str(self.folder))
        collection = client.get_or_create_collection("peer")
        store = ChromaVectorStore(chroma_collection=collection)
        documents = [
            Document(text=text, id_=path, metadata={"file": path})
            for path, text in self.files.items()
        ]
        index = VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=self.embed_model,
            transformations=[SentenceSplitter()],
        )
        self.nodes = collection.count()
        self.retriever = index.as_retriever(similarity_top_k=TOP_K)

    def retrieve(self, question: str) -> list[m.Range | None]:
        """The top-k nodes as line ranges (None: a node whose span could not be placed)."""
        return [self.lines(hit.node) for hit in self.retriever.retrieve(question)]

    def lines(self, node: Any) -> m.Range | None:
        path = node.metadata.get("file")
        text = self.files.get(path)
        if text is None:
            return None
        start, end = node.start_char_idx, node.end_char_idx
        if start is None or end is None:  # not recorded: find the node's text in its file
            start = text.find(node.get_content())
            if start < 0:
                return None
            end = start + len(node.get_content())
        return m.Range(path, line_of(text, start), line_of(text, max(start, end - 1)))


# -- rag, the same run --------------------------------------------------------------------
def rag_runtime(embedder: Embedder, corpus: Path, folder: Path, models: Path) -> Runtime:
    settings = Settings(
        corpus_dir=corpus,
        index_dir=folder,
        models_dir=models,
        llm_backend="extractive",
        embedding_backend=embedder.backend,
    )
    runtime = Runtime(settings)
    runtime.__dict__["embedder"] = embedder  # the model loaded once for both systems
    return runtime


def timed_ingests(builds: list[tuple[str, Callable[[int], Any]]]) -> dict[str, list[float]]:
    """Each build ``INGEST_ROUNDS`` times, interleaved; seconds per round."""
    took: dict[str, list[float]] = {name: [] for name, _ in builds}
    for round_ in range(INGEST_ROUNDS):
        for name, build in builds:
            started = time.perf_counter()
            build(round_)
            took[name].append(time.perf_counter() - started)
    return took


class Scoring:
    """Both systems on each question in turn (so machine load weighs on both alike): rag's
    retrieval and answer; the peer's nodes, all of them cited (``every``) or the first."""

    def __init__(self, runtime: Runtime, peer: Peer) -> None:
        self.service = runtime.answer_service
        self.peer = peer
        self.rag, self.every, self.first = Scored(), Scored(), Scored()
        self.answer_s: list[float] = []
        self.unplaced = 0

    def question(self, q: GoldenQuestion) -> None:
        started = time.perf_counter()
        passages = self.service.retrieve(q.question, TOP_K, merge=False).passages
        rag_s = time.perf_counter() - started
        started = time.perf_counter()
        found = self.peer.retrieve(q.question)
        peer_s = time.perf_counter() - started
        started = time.perf_counter()
        answer = self.service.ask(q.question, top_k=TOP_K, backend="extractive")
        self.answer_s.append(time.perf_counter() - started)
        self.unplaced += sum(r is None for r in found)
        if not q.answerable:  # a retriever with an LLM on top never abstains by itself
            for s, answered in ((self.rag, not answer.abstained), (self.every, bool(found)),
                                (self.first, bool(found))):  # fmt: skip
                s.unanswerable += 1
                s.answered_unanswerable += answered
            return
        retrieved = [m.Range(p.chunk.path, p.chunk.start_line, p.chunk.end_line) for p in passages]
        cited = [m.Range(c.path, c.start_line, c.end_line) for c in answer.citations]
        self.rag.ranks.append(m.hit_rank(retrieved, q.evidence))
        self.rag.citations.append(m.citation_scores(cited, q.evidence))
        self.rag.query_s.append(rag_s)
        nodes = [r for r in found if r is not None]
        rank = m.hit_rank([r or m.Range("?", 1, 1) for r in found], q.evidence)
        for s, nodes_cited in ((self.every, nodes), (self.first, nodes[:1])):
            s.ranks.append(rank)
            s.citations.append(m.citation_scores(nodes_cited, q.evidence))
            s.query_s.append(peer_s)


def git_head() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def run_peer(
    embedder: Embedder, squad: Path, work: Path, models: Path, limit: int | None = None
) -> dict[str, Any]:
    """Ingest and score both systems on ``squad``; the ``peer`` section of results.json."""
    corpus = squad / "corpus"
    questions = load_golden(squad / "golden.jsonl")
    if limit:
        questions = questions[:limit]
    import llama_index.core  # imported before the clock starts: not ingest time

    files = corpus_files(corpus)
    chars = sum(len(t) for t in files.values())
    began, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="peer-", dir=work) as tmp:
        base = Path(tmp)
        runtimes: list[Runtime] = []
        peers: list[Peer] = []

        def build_rag(round_: int) -> None:
            runtime = rag_runtime(embedder, corpus, base / f"rag-{round_}", models)
            runtime.ingest_service().ingest()
            runtimes.append(runtime)

        def build_peer(round_: int) -> None:
            peer = Peer(embedder, files, base / f"peer-{round_}")
            peer.ingest()
            peers.append(peer)

        took = timed_ingests([("rag", build_rag), ("peer", build_peer)])
        rag, peer = runtimes[-1], peers[-1]
        scoring = Scoring(rag, peer)
        for q in questions:
            scoring.question(q)
        rag_chunks = rag.store.count()
    ingest = {name: statistics.median(s) for name, s in took.items()}
    rag_m, peer_m = scoring.rag.metrics(), scoring.every.metrics()
    keys = ("recall@1", "recall@5", "citation_precision", "citation_line_precision")
    ratios = {k: ratio(rag_m[k], peer_m[k]) for k in keys}
    ratios["ingest_throughput"] = ratio(ingest["peer"], ingest["rag"])  # time peer / time rag
    ratios["query_p50"] = ratio(rag_m["query"]["p50_ms"], peer_m["query"]["p50_ms"])
    return {
        "questions": len(questions),
        "answerable": len(scoring.rag.ranks),
        "corpus_chars": chars,
        "rag": {
            **rag_m,
            "answer": summary(scoring.answer_s),  # ask(): retrieval, sentences, citation
            "chunks": rag_chunks,
            "ingest_s": [round(s, 2) for s in took["rag"]],
            "ingest_chars_per_s": round(chars / ingest["rag"]),
        },
        "peer": {
            **peer_m,
            "nodes": peer.nodes,
            "unplaced_nodes": scoring.unplaced,
            "ingest_s": [round(s, 2) for s in took["peer"]],
            "ingest_chars_per_s": round(chars / ingest["peer"]),
        },
        "peer_top1": {k: v for k, v in scoring.first.metrics().items() if k != "query"},
        "ratios_rag_to_peer": ratios,
        "llama_index_core": llama_index.core.__version__,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - began, 1),
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
        "git_head": git_head(),
        "embedding_model": embedder.model_id,
        "how": "rag (extractive; retrieve top 5 without merging, citations of its answer) and "
        "llama-index's default pipeline (Documents, SentenceSplitter(), VectorStoreIndex over "
        "Chroma, top-k 5, the same embedder) on the same corpus in the same process; metrics "
        "over answerable questions; peer citations = its 5 nodes' line ranges; ingest = "
        "median of 3 fresh builds each, interleaved; query = retrieval of the top 5; ratios "
        "are rag / peer (ingest_throughput: rag's chars/s over the peer's)",
    }


def section(ctx: Any) -> dict[str, Any]:
    """bench/run.py's ``peer`` section: the run's embedder and work folder; the tiny scale
    scores the first 40 questions only."""
    squad = Path(os.environ.get("BENCH_SQUAD_DIR") or SQUAD_DIR)
    if not (squad / "golden.jsonl").is_file():
        return {"skipped": f"{squad} not found"}
    limit = 40 if ctx.scale.name == "tiny" else None
    return run_peer(ctx.index_embedder, squad, ctx.work / "peer", ctx.models, limit)


def table(result: dict[str, Any]) -> str:
    """The side-by-side table of bench/README.md (markdown)."""
    rag, peer, ratios = result["rag"], result["peer"], result["ratios_rag_to_peer"]
    rows = [
        ("recall@1", "recall@1"),
        ("recall@5", "recall@5"),
        ("citation precision", "citation_precision"),
        ("citation line-precision", "citation_line_precision"),
    ]
    out = ["| metric | rag | llama-index default | rag / peer |", "| --- | --- | --- | --- |"]
    for name, key in rows:
        out.append(f"| {name} | {rag[key]} | {peer[key]} | {ratios[key]} |")
    out.append(
        f"| ingest (chars/s) | {rag['ingest_chars_per_s']} | {peer['ingest_chars_per_s']} | "
        f"{ratios['ingest_throughput']} |"
    )
    out.append(
        f"| query p50 (ms) | {rag['query']['p50_ms']} | {peer['query']['p50_ms']} | "
        f"{ratios['query_p50']} |"
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--squad", type=Path, default=Path(os.environ.get("BENCH_SQUAD_DIR")
                                                           or SQUAD_DIR))  # fmt: skip
    parser.add_argument("--questions", type=int, default=None, help="only the first N")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    parser.add_argument(
        "--out", type=Path, default=None, help="write the result under 'peer' in this JSON file"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    backend = Settings.model_fields["embedding_backend"].default
    models = ROOT / "data" / "models"  # where rag caches its int8 model by default
    embedder = Embedder("all-MiniLM-L6-v2", backend=backend, cache_dir=models)
    result = run_peer(embedder, args.squad, args.work.resolve(), models, args.questions)
    if args.out is not None:
        data = json.loads(args.out.read_text()) if args.out.is_file() else {}
        data.setdefault("measurements", {})["peer"] = result
        args.out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "how"}, indent=2))
    print()
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
