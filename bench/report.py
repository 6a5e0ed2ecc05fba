"""The results table: each target row states its goal once, and the check is derived from it;
more numbers below it."""

from __future__ import annotations

import functools
import operator
from typing import Any

from bench.context import Scale, label


# -- the table ----------------------------------------------------------------------------------
def get(tree: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def targets(results: dict[str, Any], scale: Scale) -> list[dict[str, Any]]:
    m = results["measurements"]
    big = label(max(scale.tiers))
    llama = f"threads_{scale.llama_threads[0] or 'cores'}"  # as configured by default
    search = functools.partial(get, m, "retrieval", big)
    srv = functools.partial(get, m, "server")
    llm = functools.partial(get, m, "llamacpp", llama)
    outside = "llamacpp time outside the model"
    # (issue item, metric, measured value, target: a comparison and a number)
    rows: list[tuple[str, str, Any, str]] = [
        ("1", "ingest / raw encode throughput", get(m, "ingest", "ratio"), ">= 0.90"),
        ("2", f"search p50 at {big} (ms, all requests)", search("all", "p50_ms"), "<= 20"),
        ("2", f"search p50 at {big} / raw Chroma p50", search("ratio_p50_to_raw_chroma"), "<= 2.5"),
        ("2", f"search p99 at {big} (ms, all requests)", search("all", "p99_ms"), "<= 60"),
        ("2", f"search p50 at {big}, warm (ms)", search("warm", "p50_ms"), "<= 20"),
        ("2", f"search p99 at {big}, warm (ms)", search("warm", "p99_ms"), "<= 60"),
        ("3", "POST /v1/ask p50, 1 client, cold (ms)", srv("ask_1_client_cold", "p50_ms"), "<= 60"),
        ("3", "POST /v1/ask p50, 1 client, warm (ms)", srv("ask_1_client_warm", "p50_ms"), "<= 60"),
        ("4", "server RSS after load (MB)", srv("rss_after_load_mb", "VmHWM"), "<= 1536"),
        ("5", "cold start to /readyz (s)", srv("cold_start_s"), "<= 5"),
        ("6", f"{outside}, cold ({llama})", llm("outside_model_share_cold"), "<= 0.05"),
        ("6", f"{outside}, warm ({llama})", llm("outside_model_share_warm"), "<= 0.05"),
        ("7", "re-ingest unchanged / first ingest", get(m, "ingest", "reingest_share"), "<= 0.05"),
        ("8", "int8 / fp32 encode throughput", get(m, "int8", "speedup"), ">= 2.0"),
        ("8", "SQuAD recall@5 int8 - fp32 (points)", get(m, "squad", "delta_points"), ">= -1"),
    ]  # fmt: skip
    top = label(scale.million)
    million = functools.partial(get, m, "million", "tiers", top)
    if million() is not None:  # BENCH_MILLION=1: the targets at 1M chunks
        rows += [
            ("3", f"search p50 at {top} (ms, all)", million("search", "all", "p50_ms"), "<= 60"),
            ("3", f"server RSS peak at {top} (MB)",
             million("server", "rss_after_load_mb", "VmHWM"), "<= 4096"),
            ("3", f"ready at {top} (s)", million("server", "cold_start_s"), "<= 30"),
        ]  # fmt: skip
    if million("chroma_run", "cold_start_s") is not None:  # the same, scaled out
        rows += [
            ("3", f"ready at {top}, chroma run + 2 workers (s)",
             million("chroma_run", "cold_start_s"), "<= 30"),
            ("3", f"RSS at {top}, 2 workers + chroma run (MB)", scaled_out_rss(million()),
             "<= 4096"),
        ]  # fmt: skip
    compare = {"<=": operator.le, ">=": operator.ge}
    return [
        {"issue_item": item, "metric": name, "value": value, "target": target,
         "met": None if value is None else bool(compare[target[:2]](value, float(target[3:])))}
        for item, name, value, target in rows
    ]  # fmt: skip


def scaled_out_rss(tier: dict[str, Any]) -> float | None:
    """MiB of the scaled-out setup after its load: both rag workers and the Chroma server."""
    workers = get(tier, "chroma_run", "rss_tree_mb")
    chroma = get(tier, "chroma_run", "chroma_rss_mb", "VmRSS")
    return None if workers is None or chroma is None else round(workers + chroma, 1)


def info_rows(results: dict[str, Any]) -> list[tuple[str, Any]]:
    m = results["measurements"]
    rows: list[tuple[str, Any]] = [
        ("ingest chunks/s (raw encode chunks/s)", pair(m, "ingest", "ingest_chunks_per_s",
                                                       "raw_encode_chunks_per_s")),
        ("ingest chunks (embedded)", get(m, "ingest", "chunks_embedded")),
    ]  # fmt: skip
    for tier, data in (get(m, "retrieval") or {}).items():
        if not isinstance(data, dict) or "all" not in data:
            continue
        vectors = "/".join(str(v) for v in data["index"]["vectors"].values())
        rows += [
            (f"search {tier}: chunks; vectors cached/embedded/synthetic",
             f"{data['index']['chunks']}; {vectors}"),
            (f"search {tier}: p50/p99 all (ms)", p50_p99(data["all"])),
            (f"search {tier}: p50/p99 cold (ms)", p50_p99(data["cold"])),
            (f"search {tier}: p50/p99 warm (ms)", p50_p99(data["warm"])),
            (f"search {tier}: hybrid w/o rerank p50/p99 (ms)", p50_p99(data["hybrid_no_rerank"])),
            (f"search {tier}: query embedding p50/p99 (ms)", p50_p99(data["query_embedding"])),
            (f"search {tier}: raw Chroma p50/p99 (ms)", p50_p99(data["raw_chroma"])),
        ]  # fmt: skip
        if "raw_chroma_ids_only" in data:
            rows.append((f"search {tier}: raw Chroma, ids only, p50/p99 (ms)",
                         p50_p99(data["raw_chroma_ids_only"])))  # fmt: skip
    for key in ("ask_1_client_cold", "ask_1_client_warm", "ask_8_clients"):
        data = get(m, "server", key)
        if data:
            rate = data["requests_per_s"]
            rows.append((f"/v1/ask {key[4:]}: p50/p99 ms, req/s", f"{p50_p99(data)}, {rate}"))
    for name, data in (get(m, "llamacpp") or {}).items():
        if isinstance(data, dict) and "answer" in data:
            rows += [
                (f"llamacpp {name}: prompt tok/s, generated tok/s",
                 f"{data['prompt_tokens_per_s']}, {data['generated_tokens_per_s']}"),
                (f"llamacpp {name}: TTFT p50, answer p50 (ms)",
                 f"{data['ttft']['p50_ms']}, {data['answer']['p50_ms']}"),
                (f"llamacpp {name}: outside-model share cold/warm",
                 f"{data['outside_model_share_cold']} / {data['outside_model_share_warm']}"),
            ]  # fmt: skip
    small = get(m, "server", "other_backend_small_index")
    if small:
        rows.append((
            f"{small['model']} server ({small['chunks']} chunks): cold start s, ask cold p50 "
            "ms, peak MB",
            f"{small['cold_start_s']}, {small['ask_1_client_cold']['p50_ms']}, "
            f"{small['rss_after_load_mb'].get('VmHWM')}",
        ))  # fmt: skip
    rows += [
        ("server RSS ready / after load / peak (MB)",
         f"{get(m, 'server', 'rss_ready_mb', 'VmRSS')} / "
         f"{get(m, 'server', 'rss_after_load_mb', 'VmRSS')} / "
         f"{get(m, 'server', 'rss_after_load_mb', 'VmHWM')}"),
        ("int8 chunks/s (fp32 chunks/s)", pair(m, "int8", "int8_chunks_per_s",
                                                "fp32_chunks_per_s")),
        ("int8 cosine to fp32 mean/min", pair(m, "int8", "cosine_to_fp32_mean",
                                               "cosine_to_fp32_min")),
        ("SQuAD recall@5 fp32 / int8", f"{get(m, 'squad', 'fp32', 'recall@5')} / "
                                       f"{get(m, 'squad', 'int8', 'recall@5')}"),
        ("re-ingest s in-process / `rag ingest` CLI",
         pair(m, "ingest", "reingest_s", "reingest_cli_s")),
        ("SQuAD rag / llama-index default: recall@1, recall@5, citation precision",
         ", ".join(str(get(m, "peer", "ratios_rag_to_peer", k))
                   for k in ("recall@1", "recall@5", "citation_precision"))),
        ("... line-precision, ingest throughput, query p50",
         ", ".join(str(get(m, "peer", "ratios_rag_to_peer", k))
                   for k in ("citation_line_precision", "ingest_throughput", "query_p50"))),
    ]  # fmt: skip
    for name, tier in (get(m, "million", "tiers") or {}).items():
        built = tier.get("index") or {}
        rows.append((
            f"{name}: chunks, build s, disk MB, HNSW recall@10 (own vectors)",
            f"{built.get('chunks', '-')}, {built.get('build_s', '-')}, {tier.get('disk_mb')}, "
            f"{get(tier, 'hnsw', 'recall_at_10')}",
        ))  # fmt: skip
        rows.append((
            f"{name}: search p50/p99 ms, ready s, RSS peak MB, ask p50 warm ms, 8 clients req/s",
            f"{get(tier, 'search', 'all', 'p50_ms')} / {get(tier, 'search', 'all', 'p99_ms')}, "
            f"{get(tier, 'server', 'cold_start_s')}, "
            f"{get(tier, 'server', 'rss_after_load_mb', 'VmHWM')}, "
            f"{get(tier, 'server', 'ask_1_client_warm', 'p50_ms')}, "
            f"{get(tier, 'server', 'ask_8_clients', 'requests_per_s')}",
        ))  # fmt: skip
        sweep = tier.get("hnsw_stand_in") or {}
        if any(k.startswith("ef_") for k in sweep):
            rows.append((
                f"{name}: HNSW recall@10 (query p50 ms) on the stand-in, by ef_search",
                ", ".join(f"{k[3:]}: {v['recall_at_10']} ({v['query_p50_ms']})"
                          for k, v in sweep.items() if k.startswith("ef_")),
            ))  # fmt: skip
        if get(tier, "chroma_run") is not None:
            rows.append((
                f"{name}, chroma run + 2 workers: ready s, RSS rag/chroma MB, ask p50 warm ms, "
                "8 clients req/s",
                f"{get(tier, 'chroma_run', 'cold_start_s')}, "
                f"{get(tier, 'chroma_run', 'rss_tree_mb')} / "
                f"{get(tier, 'chroma_run', 'chroma_rss_mb', 'VmRSS')}, "
                f"{get(tier, 'chroma_run', 'ask_1_client_warm', 'p50_ms')}, "
                f"{get(tier, 'chroma_run', 'ask_8_clients', 'requests_per_s')}",
            ))  # fmt: skip
    return rows


def p50_p99(data: dict[str, Any]) -> str:
    return f"{data.get('p50_ms')} / {data.get('p99_ms')}"


def pair(m: dict[str, Any], section: str, a: str, b: str) -> str:
    return f"{get(m, section, a)} ({get(m, section, b)})"


def print_table(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(f"\nrag bench  scale={meta['scale']}  {meta['seconds']:.0f} s  "
          f"load avg {meta['load_before']} -> {meta['load_after']}")  # fmt: skip
    if processor := meta.get("cpu"):
        print(f"CPU: {processor['model']}, {processor['logical_cpus']} logical, "
              f"{' '.join(processor['flags']) or 'no avx'}")  # fmt: skip
    print(f"{'#':<2} {'target':<44} {'value':>10}  {'goal':<8} met")
    for row in results["targets"]:
        value = "-" if row["value"] is None else row["value"]
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"{row['issue_item']:<2} {row['metric']:<44} {value!s:>10}  {row['target']:<8} {met}")
    print("\nmore numbers")
    for name, value in info_rows(results):
        print(f"   {name:<44} {value}")
    for section, data in results["measurements"].items():
        if isinstance(data, dict) and ("error" in data or "skipped" in data):
            print(f"   {section}: {data.get('error') or data.get('skipped')}")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report RESULTS.json``: the table again, its targets re-derived."""
    import argparse
    import json
    from dataclasses import asdict
    from pathlib import Path

    from bench.context import SCALES

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    scale = SCALES[results["meta"]["scale"]]
    if tiers := results["meta"]["scale_settings"].get("tiers"):
        scale = Scale(**{**asdict(scale), "tiers": tuple(tiers)})
    results["targets"] = targets(results, scale)
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
