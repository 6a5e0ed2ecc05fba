"""What every section of the benchmark shares: the scales, the run's context (work folder,
models, the embedder loaded once), settings and runtimes for an index, and timing helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import CorpusInfo
from rag.adapters.embedder import Embedder, split_backend
from rag.config import Settings
from rag.runtime import Runtime

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
FP32_MODEL = "all-MiniLM-L6-v2"
INT8_MODEL = FP32_MODEL + "+onnx-int8"
# The SQuAD benchmark: ../shared beside the checkout (as CI lays it out), or --squad-dir.
SQUAD_DIR = Path(
    os.environ.get("BENCH_SQUAD_DIR") or ROOT.parent / "shared" / "benchmarks" / "squad"
)


@dataclass(frozen=True)
class Scale:
    name: str
    ingest_chunks: int  # the ingest-throughput corpus
    tiers: tuple[int, ...]  # retrieval tiers (chunks)
    embed_tiers: bool  # embed every tier chunk for real (cached); else synthetic for misses
    questions: int  # distinct questions for search and ask
    warm_rounds: int  # search: rounds over the questions after the cold one
    ask_per_client: int  # /v1/ask requests per client with 8 clients
    llama_questions: int
    int8_texts: int
    squad: bool  # run the two SQuAD evaluations (else: the recorded result)
    cli_reingest: bool = True  # also time `rag ingest` of the unchanged corpus in a subprocess
    llama_threads: tuple[int, ...] = (0, 1)  # RAG_LLAMACPP_THREADS values (0: one per core)
    million: int = 1_000_000  # the biggest tier of the cost curve (BENCH_MILLION=1)


SCALES = {
    "tiny": Scale(
        "tiny",
        40,
        (200, 600),
        False,
        2,
        1,
        1,
        1,
        32,
        False,
        cli_reingest=False,
        llama_threads=(1,),
        million=1_000,
    ),
    "default": Scale("default", 2_000, (10_000, 100_000), False, 30, 3, 5, 3, 256, False),
    "full": Scale("full", 10_000, (10_000, 100_000), True, 40, 3, 5, 8, 1_024, True),
}


@dataclass
class Context:
    scale: Scale
    work: Path
    models: Path
    skip: set[str]
    index_model: str  # the embedder every section but `int8` uses (default: rag's default)
    index_embedder: Embedder
    squad_dir: Path = SQUAD_DIR  # corpus/ and golden.jsonl of the SQuAD benchmark
    ingest_index: tuple[Path, Path] | None = None  # (index, corpus) of the ingest tier
    tiers: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # built retrieval tiers
    texts: list[str] = field(default_factory=list)  # what the ingest tier embedded
    errors: list[str] = field(default_factory=list)
    _fp32: Embedder | None = None

    @property
    def fp32(self) -> Embedder:
        """The torch fp32 embedder (loaded on first use: the int8 comparison)."""
        if self._fp32 is None:
            self._fp32 = (
                self.index_embedder if self.index_model == FP32_MODEL else Embedder(FP32_MODEL)
            )
        return self._fp32


def settings_for(ctx: Context, index: Path, corpus: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "index_dir": index,
        "corpus_dir": corpus,
        "models_dir": ctx.models,
        "llm_backend": "extractive",
        "embedding_model": ctx.index_model,
        "embedding_backend": split_backend(ctx.index_model)[1] or "torch",
    }
    values.update(extra)
    return Settings(**values)


def runtime_with(settings: Settings, embedder: Any) -> Runtime:
    """A Runtime whose embedder is one already loaded (the model is loaded once per run;
    model loading is not part of any throughput measured here)."""
    return Runtime(settings, embedder=embedder)


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def corpus_dict(info: CorpusInfo) -> dict[str, Any]:
    return {"files": info.files, "mb": round(info.bytes / 1e6, 2)}


def label(chunks: int) -> str:
    return f"{chunks // 1000}k" if chunks >= 1000 and chunks % 1000 == 0 else str(chunks)


def git_head() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
    return None


CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
)


def cpu() -> dict[str, Any]:
    """The processor the numbers were taken on: model name, logical CPUs, and the vector
    instruction sets that change int8 and float kernels (avx2, vnni, …)."""
    model, flags = "unknown", set[str]()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "flags": [f for f in CPU_FLAGS if f in flags],
    }


def shown_path(path: Path) -> str:
    """``path`` as results.json records it: relative to the checkout, never the machine's
    absolute layout (a folder outside the checkout is named by its last part only)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return f"(outside the checkout)/{path.name}"
