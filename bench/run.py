"""`make bench`: rag's benchmark suite.  Prints a table and writes bench/results.json.

    python -m bench.run [--scale tiny|default|full] [--work DIR] [--out FILE] [--skip A,B]

Speeds are ratios against baselines measured in the same run (raw SentenceTransformer.encode,
raw Chroma collection.query, fp32 encode), because absolute times vary on shared machines.
See bench/README.md for what each number means and how it is measured.

This module keeps the command line and the loop over the sections; each section is a module
(ingest, int8 (with SQuAD), retrieval, server, llamacpp), context.py holds what they share and
report.py the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.context import (
    FP32_MODEL,
    INT8_MODEL,
    ROOT,
    SCALES,
    SQUAD_DIR,
    Context,
    Scale,
    cpu,
    git_head,
    log,
    shown_path,
    timer,
)
from bench.curve import write_curve
from bench.ingest import bench_ingest
from bench.int8 import bench_int8, bench_squad
from bench.llamacpp import bench_llamacpp
from bench.million import bench_million
from bench.peer import section as bench_peer
from bench.report import print_table, targets
from bench.retrieval import bench_retrieval
from bench.server import bench_server
from rag.adapters.embedder import Embedder
from rag.config import Settings

SECTIONS = ("ingest", "int8", "retrieval", "server", "llamacpp", "squad", "peer", "million")


def run(scale: Scale, work: Path, out: Path, skip: set[str], squad_dir: Path = SQUAD_DIR) -> int:
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    models = work / "models"
    backend = Settings.model_fields["embedding_backend"].default
    default = INT8_MODEL if backend == "onnx-int8" else FP32_MODEL
    index_model = os.environ.get("BENCH_INDEX_MODEL", default)
    if index_model not in (FP32_MODEL, INT8_MODEL):
        raise SystemExit(f"BENCH_INDEX_MODEL must be {FP32_MODEL} or {INT8_MODEL}")
    index_embedder = Embedder(index_model, backend="torch", cache_dir=models)
    ctx = Context(scale, work, models, skip, index_model, index_embedder, squad_dir)
    load_before = round(os.getloadavg()[0], 2)
    measurements: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[Context], dict[str, Any]]]] = [
        ("ingest", bench_ingest),
        ("int8", bench_int8),
        ("retrieval", bench_retrieval),
        ("server", bench_server),
        ("llamacpp", bench_llamacpp),
        ("squad", bench_squad),
        ("peer", bench_peer),  # llama-index's default pipeline beside rag (bench/peer.py)
        # the 1M tier and the cost curve (BENCH_MILLION=1 or --million; bench/million.py)
        ("million", lambda c: bench_million(c, measurements.get("retrieval", {}))),
    ]
    for name, step in steps:
        if name in skip:
            why = "BENCH_MILLION=1 runs it" if name == "million" else "--skip"
            measurements[name] = {"skipped": why}
            continue
        log.info("bench: %s ...", name)
        with timer() as took:
            try:
                measurements[name] = step(ctx)
            except Exception as exc:  # one broken section must not hide the others
                traceback.print_exc()
                measurements[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
                ctx.errors.append(name)
        if isinstance(measurements[name], dict):
            measurements[name]["section_s"] = round(took[0], 1)
        log.info("bench: %s done in %.0f s", name, took[0])
    results: dict[str, Any] = {
        "meta": {
            "scale": scale.name,
            "scale_settings": asdict(scale),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "git_head": git_head(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu": cpu(),
            "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2),
            "work_dir": shown_path(work),
            "index_model": index_model,
            "vectors_note": "retrieval-tier indexes are built through IngestService.ingest "
            "with vectors from an on-disk cache of real embeddings (WORK/vectors-*.sqlite); "
            "chunks with no cached vector get a synthetic one (a cached real vector plus "
            "noise, cosine ~0.8): see retrieval.TIER.index.vectors for the counts. "
            "BENCH_SCALE=full embeds every chunk for real and caches it.",
        },
        "measurements": measurements,
    }
    results["targets"] = targets(results, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    print(f"\nwrote {out}")
    if curve := write_curve(results, out.with_name("cost-curve.svg")):
        print(f"wrote {curve}")
    return 1 if ctx.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE") or "default"
    )
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("BENCH_WORK") or ROOT / "bench" / "work")
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "results.json"),
    )
    parser.add_argument(
        "--skip",
        default=os.environ.get("BENCH_SKIP", ""),
        help=f"comma-separated: {','.join(SECTIONS)}",
    )
    parser.add_argument("--squad", action="store_true", help="run the SQuAD evaluations now")
    parser.add_argument(
        "--million",
        action="store_true",
        default=os.environ.get("BENCH_MILLION") == "1",
        help="also the 1M-chunk tier and the cost curve (hours the first time)",
    )
    parser.add_argument(
        "--squad-dir",
        type=Path,
        default=SQUAD_DIR,
        help="the SQuAD benchmark folder (corpus/ and golden.jsonl); "
        "default ../shared beside the checkout",
    )
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := skip - set(SECTIONS):
        parser.error(f"unknown section(s) to skip: {', '.join(sorted(unknown))}")
    if not args.million:
        skip.add("million")
    scale = SCALES[args.scale]
    if tiers := os.environ.get("BENCH_TIERS"):  # e.g. BENCH_TIERS=10000 while developing
        scale = Scale(**{**asdict(scale), "tiers": tuple(int(t) for t in tiers.split(","))})
    if args.squad or os.environ.get("BENCH_SQUAD") in ("1", "int8"):
        scale = Scale(**{**asdict(scale), "squad": True})
    return run(scale, args.work.resolve(), args.out.resolve(), skip, args.squad_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
