"""Sections 3 + 4 + 5: a real `rag serve` process on 127.0.0.1 (a free port), started and
stopped by the bench: cold start to /readyz, POST /v1/ask load with 1 and N clients, and the
server's RSS (and a server with the other embedding backend on a small index)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.context import FP32_MODEL, INT8_MODEL, Context, fresh, label, runtime_with, settings_for
from bench.corpus import build_corpus
from bench.queries import QUESTIONS
from bench.stats import summary
from rag.adapters.embedder import Embedder, split_backend


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM), MiB, from /proc."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def tree_rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and every process under it (uvicorn's workers), MiB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        at = todo.pop()
        total += rss_mb(at).get("VmRSS", 0.0)
        todo += children.get(at, [])
    return round(total, 1)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    cold_start_s: float
    port_open_s: float
    log: Path


@contextlib.contextmanager
def serve(
    index: Path,
    corpus: Path,
    models: Path,
    env: dict[str, str],
    log: Path,
    args: Sequence[str] = (),
) -> Iterator[Server]:
    """Start `rag serve` (extractive backend) on ``index`` (``args``: more options, e.g.
    ``--workers 2``); yield once /readyz is green."""
    port = free_port()
    rag = Path(sys.executable).parent / "rag"
    command = [str(rag)] if rag.exists() else [sys.executable, "-m", "rag.cli.main"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--backend", "extractive"]
    command += ["--index", str(index), *args]
    child_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAG_CORPUS_DIR": str(corpus),
        "RAG_MODELS_DIR": str(models),
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=child_env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            port_open = ready = None
            with httpx.Client(timeout=5.0) as client:
                while ready is None:
                    if proc.poll() is not None:
                        raise RuntimeError(f"rag serve exited with {proc.returncode}; see {log}")
                    if time.perf_counter() - started > 300:
                        raise RuntimeError(f"rag serve was not ready within 300 s; see {log}")
                    try:
                        got = client.get(f"{url}/readyz")
                    except httpx.TransportError:
                        time.sleep(0.02)
                        continue
                    port_open = port_open or time.perf_counter() - started
                    if got.status_code == 200 and got.json().get("status") == "ready":
                        ready = time.perf_counter() - started
                    else:
                        time.sleep(0.02)
            yield Server(proc, url, round(ready, 3), round(port_open or ready, 3), log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def ask_load(
    url: str, questions: Sequence[str], clients: int, requests_per_client: int
) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, asking in turn; latency per
    request and requests per second over the whole run."""
    return _ask_rounds(url, questions, clients, requests_per_client, 1)[0]


def ask_cold_then_warm(url: str, questions: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One client asks every question twice over one connection: the first round (cold)
    and the second (warm).  One connection is served by one worker of ``--workers N``, and
    each worker keeps its own caches: a second connection may meet a worker that never saw
    the questions, and a "warm" round on it is cold."""
    cold, warm = _ask_rounds(url, questions, 1, len(questions), 2)
    return cold, warm


def _ask_rounds(
    url: str, questions: Sequence[str], clients: int, requests_per_client: int, rounds: int
) -> list[dict[str, Any]]:
    """Each of ``clients`` threads asks ``rounds`` times over its own connection; one
    summary per round (its requests per second over that round's wall time)."""
    latencies: list[list[float]] = [[] for _ in range(rounds)]
    walls = [0.0] * rounds
    errors: list[list[str]] = [[] for _ in range(rounds)]
    lock = threading.Lock()
    gates = [threading.Barrier(clients) for _ in range(rounds)]

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120.0) as client:
            for r in range(rounds):
                gates[r].wait()  # a round starts when every client has finished the last
                began = time.perf_counter()
                for i in range(requests_per_client):
                    question = questions[(n * requests_per_client + i) % len(questions)]
                    start = time.perf_counter()
                    got = client.post("/v1/ask", json={"question": question})
                    took = time.perf_counter() - start
                    with lock:
                        if got.status_code == 200:
                            latencies[r].append(took)
                        else:
                            errors[r].append(f"{got.status_code}: {got.text[:200]}")
                with lock:
                    walls[r] = max(walls[r], time.perf_counter() - began)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [
        {
            "clients": clients,
            "requests": clients * requests_per_client,
            "errors": len(failed),
            "first_error": failed[0] if failed else None,
            "requests_per_s": round(len(times) / wall, 2) if wall else None,
            **summary(times),
        }
        for times, wall, failed in zip(latencies, walls, errors, strict=True)
    ]


# -- 3 + 4 + 5: the HTTP server ---------------------------------------------------------------
def serve_and_load(
    ctx: Context,
    index: Path,
    corpus: Path,
    log: Path,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> dict[str, Any]:
    """`rag serve` on ``index``: cold start, RSS when ready and after the /v1/ask load (one
    client cold, then warm; 8 clients).  RSS is the first process's; ``rss_tree_mb`` adds
    its workers' (``--workers N``)."""
    questions = list(QUESTIONS[: ctx.scale.questions])
    env = {
        "RAG_EMBEDDING_MODEL": ctx.index_model,
        "RAG_EMBEDDING_BACKEND": split_backend(ctx.index_model)[1] or "torch",
        **(env or {}),
    }
    out: dict[str, Any] = {}
    with serve(index, corpus, ctx.models, env, log, args) as server:
        out["cold_start_s"] = server.cold_start_s
        out["port_open_s"] = server.port_open_s
        out["rss_ready_mb"] = rss_mb(server.proc.pid)
        cold, warm = ask_cold_then_warm(server.url, questions)
        out["ask_1_client_cold"], out["ask_1_client_warm"] = cold, warm
        out["ask_8_clients"] = ask_load(server.url, questions, 8, ctx.scale.ask_per_client)
        out["rss_after_load_mb"] = rss_mb(server.proc.pid)
        out["rss_tree_mb"] = tree_rss_mb(server.proc.pid)
    return out


def bench_server(ctx: Context) -> dict[str, Any]:
    tiers = ctx.tiers
    if not tiers:
        raise RuntimeError("no retrieval tier index to serve (the retrieval section is skipped)")
    name = label(max(ctx.scale.tiers))
    index, corpus = tiers[name]
    out: dict[str, Any] = {"index": name, "model": ctx.index_model}
    out.update(serve_and_load(ctx, index, corpus, ctx.work / "serve.log"))
    if "int8" not in ctx.skip:
        out["other_backend_small_index"] = serve_other_small(ctx)
    out["how"] = (
        "`rag serve --backend extractive` on 127.0.0.1 (free port) over the largest tier's "
        "index; cold start = process start to GET /readyz status ready; POST /v1/ask with "
        "httpx, one connection per client: 1 client over the questions once (cold: sentence "
        "embeddings not cached) and again on the same connection (warm: with several workers "
        "the same worker), then 8 concurrent clients (warm); RSS from "
        "/proc (VmRSS now, VmHWM peak)"
    )
    return out


def serve_other_small(ctx: Context) -> dict[str, Any]:
    """Cold start and RSS of a server with the other embedding backend (torch when the
    bench runs int8, and the reverse), on a small index built with it, for comparison."""
    other = FP32_MODEL if ctx.index_model == INT8_MODEL else INT8_MODEL
    backend = split_backend(other)[1] or "torch"
    corpus = build_corpus(ctx.work / "corpus-small", 300)
    index = fresh(ctx.work / "index-small")
    embedder = ctx.fp32 if other == FP32_MODEL else Embedder(other, cache_dir=ctx.models)
    settings = settings_for(ctx, index, corpus.path)
    settings = settings.model_copy(update={"embedding_model": other, "embedding_backend": backend})
    report = runtime_with(settings, embedder).ingest_service().ingest([corpus.path])
    questions = list(QUESTIONS[: ctx.scale.questions])
    env = {"RAG_EMBEDDING_MODEL": other, "RAG_EMBEDDING_BACKEND": backend}
    with serve(index, corpus.path, ctx.models, env, ctx.work / "serve-small.log") as server:
        out: dict[str, Any] = {
            "model": other,
            "chunks": report.chunks_total,
            "cold_start_s": server.cold_start_s,
        }
        out["ask_1_client_cold"] = ask_load(server.url, questions, 1, len(questions))
        out["rss_after_load_mb"] = rss_mb(server.proc.pid)
    return out
