"""The benchmark suite runs end to end at a tiny scale and writes a well-formed results.json.

Only the shape is checked: timings vary with the machine, so nothing here asserts a speed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQUAD_DIR = ROOT.parent / "shared" / "benchmarks" / "squad"  # as bench/peer.py finds it
LATENCY_KEYS = {"n", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms"}


def _latency(block: dict[str, object], n: int | None = None) -> None:
    assert set(block) >= LATENCY_KEYS
    assert isinstance(block["p50_ms"], float) and block["p50_ms"] > 0
    assert isinstance(block["p99_ms"], float) and block["p99_ms"] >= block["p50_ms"]
    if n is not None:
        assert block["n"] == n


def test_bench_tiny_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    skip = ["int8", "squad"]  # the int8 export and the SQuAD evaluations take minutes
    if importlib.util.find_spec("llama_cpp") is None:
        skip.append("llamacpp")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("BENCH_SCALE", "BENCH_TIERS", "BENCH_SKIP", "BENCH_SQUAD", "BENCH_INDEX_MODEL"):
        env.pop(name, None)
    command = [sys.executable, "-m", "bench.run", "--scale", "tiny", "--skip", ",".join(skip)]
    command += ["--million"]  # at this scale its biggest tier is 1,000 chunks
    command += ["--work", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    results = json.loads(out.read_text())
    assert set(results) == {"meta", "measurements", "targets"}
    assert results["meta"]["scale"] == "tiny"
    m = results["measurements"]

    ingest = m["ingest"]
    assert ingest["chunks_embedded"] > 0 and ingest["same_texts_as_baseline"] is True
    assert ingest["ratio"] > 0 and ingest["raw_encode_chunks_per_s"] > 0
    assert ingest["reingest_files_unchanged"] == ingest["files_indexed"]
    assert 0 <= ingest["reingest_share"] < 1

    tiers = {k: v for k, v in m["retrieval"].items() if k != "section_s"}
    assert set(tiers) == {"200", "600"}
    for tier in tiers.values():
        assert tier["index"]["chunks"] > 0
        assert sum(tier["index"]["vectors"].values()) == tier["index"]["chunks"]
        for key in ("cold", "warm", "all", "raw_chroma", "hybrid_no_rerank", "query_embedding"):
            _latency(tier[key])
        assert tier["ratio_p50_to_raw_chroma"] > 0

    server = m["server"]
    assert server["cold_start_s"] > 0 and server["rss_after_load_mb"]["VmRSS"] > 0
    for key, requests in (("ask_1_client_cold", 2), ("ask_8_clients", 8)):
        assert server[key]["errors"] == 0 and server[key]["requests"] == requests
        _latency(server[key], requests)

    if "llamacpp" not in skip:
        llama = m["llamacpp"]["threads_1"]
        assert llama["answers_generated"] >= 1
        assert llama["generated_tokens_per_s"] > 0 and llama["prompt_tokens_per_s"] > 0
        assert 0 <= llama["outside_model_share_cold"] < 1
    peer = m["peer"]  # llama-index's default pipeline beside rag, first 40 SQuAD questions
    assert "skipped" not in peer, f"{SQUAD_DIR} is missing"
    assert peer["questions"] == 40 and peer["peer"]["nodes"] > 0 and peer["rag"]["chunks"] > 0
    assert peer["peer"]["unplaced_nodes"] == 0 and peer["peer"]["citations_per_answer"] == 5
    for key in ("recall@1", "recall@5", "citation_precision", "citation_line_precision"):
        assert 0 <= peer["rag"][key] <= 1 and 0 <= peer["peer"][key] <= 1
    assert set(peer["ratios_rag_to_peer"]) >= {"recall@1", "ingest_throughput", "query_p50"}
    _latency(peer["peer"]["query"], 40)
    for name in skip:
        assert m[name] == {"skipped": "--skip"}

    assert results["targets"], "the targets table is empty"
    for row in results["targets"]:
        assert {"issue_item", "metric", "value", "target", "met"} <= set(row)
        assert row["met"] is None if row["value"] is None else isinstance(row["met"], bool)
    assert "more numbers" in done.stdout  # the printed table

    million = m["million"]["tiers"]  # the cost curve: every tier served and measured
    assert set(million) == {"200", "600", "1k"}
    for tier in million.values():
        assert tier["disk_mb"] > 0 and tier["server"]["cold_start_s"] > 0
        assert tier["server"]["ask_8_clients"]["errors"] == 0
        scaled = tier["chroma_run"]  # the same index behind `chroma run`, 2 rag workers
        assert scaled["ask_8_clients"]["errors"] == 0 and scaled["cold_start_s"] > 0
        assert scaled["rss_tree_mb"] > scaled["rss_after_load_mb"]["VmRSS"]  # both workers
        assert scaled["chroma_rss_mb"]["VmRSS"] > 0
        _latency(tier["search"]["all"])
        assert 0 <= tier["hnsw"]["recall_at_10"] <= 1 and tier["hnsw"]["questions"] > 0
        assert 0 <= tier["hnsw"]["finds_itself_first"] <= 1
        sweep = tier["hnsw_stand_in"]  # a Gaussian fitted to the real vectors the run cached
        assert sweep["vectors"] == tier["hnsw"]["vectors"] and sweep["real_vectors_fitted"] > 1
        for ef in (100, 200, 400, 800):
            assert 0 <= sweep[f"ef_{ef}"]["recall_at_10"] <= 1
    svg = (tmp_path / "cost-curve.svg").read_text()
    assert svg.count("<polyline") == 3 and svg.count("<circle") == 9
    assert results["meta"]["cpu"]["logical_cpus"] == os.cpu_count()
    assert not results["meta"]["work_dir"].startswith("/")
