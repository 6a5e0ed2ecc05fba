"""Section 10, the 1M-chunk tier and the cost curve (``BENCH_MILLION=1`` or ``--million``;
hours of CPU the first time, so not part of the default run).

The 1M tier is built as the others are (``IngestService.ingest`` over real files: the
standard library, then the environment's site-packages; vectors synthetic where no real one
is cached, because embedding a million chunks takes days on two cores; the keyword leg and
the questions are real).  For each tier (10k, 100k, 1M) a `rag serve` (embedded Chroma) is
started on it: time to ready, RSS after load, `/v1/ask` p50 at 1 and 8 clients, and the
index's size on disk; search p50/p99 in-process as the retrieval section measures it (taken
from that section for the tiers it ran).  HNSW's recall against an exact search, at each tier,
on the tier's own vectors and on a stand-in with real embeddings' geometry for several
ef_search values (bench/hnsw.py says why both).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.context import Context, label
from bench.hnsw import ef_sweep, tier_recall
from bench.retrieval import bench_search, build_tier
from bench.server import free_port, rss_mb, serve_and_load
from rag.config import Settings


def disk_mb(folder: Path) -> float:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_blocks * 512
    return round(total / 2**20, 1)


@contextlib.contextmanager
def chroma_run(index: Path, log: Path) -> Iterator[tuple[str, float, int]]:
    """`chroma run` on 127.0.0.1 serving the tier's own Chroma folder (the embedded index's
    files are what a Chroma server keeps: the same collection, no second build); yields its
    URL, seconds to its first heartbeat, and its pid."""
    folder = Settings(index_dir=index).chroma_path
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    command = [str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen([*command, "--port", str(port)], stdout=sink, stderr=sink)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma run exited with {proc.returncode}; see {log}")
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"chroma run did not answer within 300 s; see {log}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                        break
                time.sleep(0.05)
            yield url, round(time.perf_counter() - started, 3), proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def served_by_chroma_run(ctx: Context, index: Path, corpus: Path) -> dict[str, Any]:
    """The tier behind `chroma run` with `rag serve --workers 2` over it: the scale-out
    setup (docs/deploy.md), measured as the embedded one is."""
    with chroma_run(index, ctx.work / "chroma-tier.log") as (url, ready_s, pid):
        out: dict[str, Any] = {"chroma_heartbeat_s": ready_s}
        env = {"RAG_CHROMA_URL": url}
        log = ctx.work / "serve-tier-chroma.log"
        out.update(serve_and_load(ctx, index, corpus, log, env, ["--workers", "2"]))
        out["chroma_rss_mb"] = rss_mb(pid)
    return out


def bench_million(ctx: Context, searched: dict[str, Any]) -> dict[str, Any]:
    """``searched``: the retrieval section's results by tier label (search already timed).

    Every tier is built first (the 1M one takes hours the first time), then each is
    measured in turn, so the measurements run together on a machine left quiet for them."""
    tiers: dict[str, Any] = {}
    built: dict[str, tuple[Path, Path, dict[str, Any] | None]] = {}
    for chunks in sorted({*ctx.scale.tiers, ctx.scale.million}):
        name = label(chunks)
        if name in ctx.tiers and name in searched:
            built[name] = (*ctx.tiers[name], None)
        else:
            index, info, made = build_tier(ctx, chunks)
            built[name] = (index, info.path, made)
            ctx.tiers[name] = (index, info.path)
    for name, (index, corpus, made_now) in built.items():
        entry: dict[str, Any] = {}
        if made_now is None:
            entry["search"] = {"all": searched[name]["all"]}
        else:
            entry["index"] = made_now
            entry["search"] = bench_search(ctx, index, corpus)
        entry["disk_mb"] = disk_mb(index)
        entry["server"] = serve_and_load(ctx, index, corpus, ctx.work / "serve-tier.log")
        entry["chroma_run"] = served_by_chroma_run(ctx, index, corpus)
        entry["hnsw"] = tier_recall(ctx, index, corpus)
        entry["hnsw_stand_in"] = ef_sweep(ctx, entry["hnsw"]["vectors"])
        tiers[name] = entry
    return {
        "tiers": tiers,
        "how": "each tier served by `rag serve --backend extractive` (embedded Chroma): cold "
        "start = process start to /readyz ready; RSS VmRSS/VmHWM after the load; search = POST "
        "/v1/search in-process as in the retrieval section; vectors synthetic where no real "
        "embedding is cached (see the tier's index.vectors). chroma_run: the same index folder "
        "with its Chroma files served by `chroma run` (started first; heartbeat time) and "
        "`rag serve --workers 2` over it (RAG_CHROMA_URL): cold start, the same load, the "
        "RSS of the rag process tree (rss_tree_mb, both workers) and of the Chroma server",
    }
