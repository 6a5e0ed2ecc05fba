"""Section 8: the int8 ONNX embedder against fp32 (throughput, cosine), and its quality:
SQuAD recall@5 of `rag eval` with each (recorded in bench/squad_recall.json)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import FP32_MODEL, INT8_MODEL, Context, fresh, git_head, timer
from bench.queries import QUESTIONS
from rag.adapters.embedder import Embedder, split_backend

SQUAD_RECORD = Path(__file__).resolve().parent / "squad_recall.json"


# -- 8: the int8 ONNX embedder against fp32 --------------------------------------------------
def bench_int8(ctx: Context) -> dict[str, Any]:
    texts = ctx.texts or [f"{q} {q}" for q in QUESTIONS]
    step = max(1, len(texts) // ctx.scale.int8_texts)
    sample = texts[::step][: ctx.scale.int8_texts]
    with timer() as took:
        int8 = Embedder(INT8_MODEL, cache_dir=ctx.models)
    load_s = took[0]
    for model in (ctx.fp32, int8):
        model.encode(sample[:32])
    fp32_s = int8_s = 0.0
    for _ in range(2):  # interleaved, so both see the same machine load
        with timer() as took:
            a = ctx.fp32.encode(sample)
        fp32_s += took[0]
        with timer() as took:
            b = int8.encode(sample)
        int8_s += took[0]
    cosine = (a * b).sum(axis=1)
    return {
        "model_id": int8.model_id,
        "texts": len(sample),
        "load_or_export_s": round(load_s, 2),
        "fp32_chunks_per_s": round(2 * len(sample) / fp32_s, 2),
        "int8_chunks_per_s": round(2 * len(sample) / int8_s, 2),
        "speedup": round(fp32_s / int8_s, 3),
        "cosine_to_fp32_mean": round(float(cosine.mean()), 4),
        "cosine_to_fp32_min": round(float(cosine.min()), 4),
        "how": "Embedder.encode (the ingest path) on ingest-tier chunk texts, fp32 (torch) and "
        "onnx-int8 interleaved, two rounds each",
    }


# -- 8 (quality): SQuAD recall@5, fp32 against int8 -------------------------------------------
def bench_squad(ctx: Context) -> dict[str, Any]:
    if not ctx.scale.squad:
        if SQUAD_RECORD.is_file():
            return {**json.loads(SQUAD_RECORD.read_text()), "source": "recorded"}
        return {"skipped": "no recorded result; run with BENCH_SCALE=full or --squad"}
    if not (ctx.squad_dir / "golden.jsonl").is_file():
        return {"skipped": f"{ctx.squad_dir} not found (give --squad-dir or BENCH_SQUAD_DIR)"}
    out: dict[str, Any] = {}
    runs: tuple[tuple[str, str], ...] = (("fp32", FP32_MODEL), ("int8", INT8_MODEL))
    if os.environ.get("BENCH_SQUAD") == "int8" and SQUAD_RECORD.is_file():
        # the fp32 evaluation takes ~30 min: keep its recorded result, re-run int8 (~3 min)
        out["fp32"] = json.loads(SQUAD_RECORD.read_text())["fp32"]
        runs = (("int8", INT8_MODEL),)
    for name, model in runs:
        folder = fresh(ctx.work / f"squad-{name}")
        env = {
            **os.environ,
            "RAG_EMBEDDING_MODEL": model,
            "RAG_EMBEDDING_BACKEND": split_backend(model)[1] or "torch",
            "RAG_MODELS_DIR": str(ctx.models),
        }
        command = [str(Path(sys.executable).parent / "rag"), "eval"]
        command += [
            "--corpus",
            str(ctx.squad_dir / "corpus"),
            "--golden",
            str(ctx.squad_dir / "golden.jsonl"),
        ]
        command += ["--backend", "extractive", "--out", str(folder)]
        with timer() as took:
            subprocess.run(command, env=env, check=True, capture_output=True)
        metrics = json.loads((folder / "summary.json").read_text())
        out[name] = {
            "recall@5": find_metric(metrics, "recall@5"),
            "recall@1": find_metric(metrics, "recall@1"),
            "citation_precision": find_metric(metrics, "citation_precision"),
            "contains": find_metric(metrics, "contains"),
            "abstention_auroc": find_metric(metrics, "abstention_auroc"),
            "eval_s": round(took[0], 1),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_head": git_head(),
        }
    out["delta_points"] = round(100 * (out["int8"]["recall@5"] - out["fp32"]["recall@5"]), 2)
    out["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["how"] = "rag eval --corpus squad/corpus --golden squad/golden.jsonl --backend extractive"
    SQUAD_RECORD.write_text(json.dumps(out, indent=2) + "\n")
    return {**out, "source": "measured now"}


def find_metric(tree: Any, name: str) -> float:
    if isinstance(tree, dict):
        if name in tree and isinstance(tree[name], int | float):
            return float(tree[name])
        for value in tree.values():
            with contextlib.suppress(KeyError):
                return find_metric(value, name)
    raise KeyError(name)
