"""Concurrency and soak, kept true: four askers on a `rag serve` (loopback, embedded index)
while a writer uploads and deletes documents; every request 2xx, every citation the lines of
its file as they were when cited, and the server's memory and file descriptors flat.

Bounded: ``RAG_SOAK_SECONDS`` of load (60 by default), marked slow (`make test-slow`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import RAG, stop_process, wait_http
from tests.conftest import CORPUS, REPO, free_port, sed_lines

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("RAG_SOAK_SECONDS", "60"))
ASKERS = 4


def _upload_text(n: int) -> str:
    """Distinct, answerable text for upload ``n`` (its lines are known to the test)."""
    return (
        f"# Survey {n}\n\n"
        f"The survey ship Kestrel-{n} mapped {100 + n} kilometres of the fjord in spring.\n"
        f"Its crew of {n + 3} divers found the wreck of the schooner Aurora-{n}.\n"
        "The findings were filed with the harbour office in Tromsø.\n"
    )


def _rss_and_fds(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kb * 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _check_citations(
    answer: dict[str, Any], corpus: Path, uploaded: dict[str, str], problems: list[str]
) -> None:
    for c in answer["citations"]:
        path = c["path"]
        # an upload may be deleted by now: check it against what was sent
        lines = uploaded[path].split("\n")[:-1] if path in uploaded else sed_lines(corpus / path)
        quote = "\n".join(lines[c["start_line"] - 1 : c["end_line"]])
        if c["quote"] != quote:
            problems.append(f"{path}:{c['start_line']}-{c['end_line']}: {c['quote']!r}")


def test_askers_during_uploads_and_deletes_get_2xx_and_true_citations(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = {**cli_env, "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_CORPUS_DIR": str(corpus)}
    subprocess.run([RAG, "ingest"], env=env, check=True, capture_output=True, timeout=300)
    golden = [json.loads(line) for line in (REPO / "eval" / "golden.jsonl").open()]
    questions = [g["question"] for g in golden] + [
        f"How many divers were in the crew of Kestrel-{n}?" for n in range(6)
    ]
    uploaded = {f"uploads/survey-{n}.md": _upload_text(n) for n in range(6)}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [RAG, "serve", "--port", str(port), "--backend", "extractive"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    statuses: dict[str, list[int]] = {"ask": [], "search": [], "upload": [], "delete": []}
    failures: list[str] = []
    problems: list[str] = []
    stop = threading.Event()

    def asker(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, timeout=120) as client:
            while not stop.is_set():
                question = rng.choice(questions)
                try:
                    if n == 0:
                        r = client.post("/v1/search", json={"query": question})
                        statuses["search"].append(r.status_code)
                        continue
                    r = client.post("/v1/ask", json={"question": question})
                except httpx.HTTPError as exc:
                    failures.append(f"ask {question!r}: {exc!r}")
                    continue
                statuses["ask"].append(r.status_code)
                if r.status_code == 200:
                    _check_citations(r.json(), corpus, uploaded, problems)
                else:
                    failures.append(f"ask {question!r}: {r.status_code} {r.text[:300]}")

    def writer() -> None:
        names = list(uploaded)
        with httpx.Client(base_url=url, timeout=120) as client:
            round_ = 0
            while not stop.is_set():
                name = names[round_ % len(names)]
                round_ += 1
                sent = {"files": (name.split("/")[-1], uploaded[name].encode(), "text/markdown")}
                r = client.post("/v1/ingest", files=sent)
                statuses["upload"].append(r.status_code)
                if r.status_code != 202:
                    failures.append(f"upload {name}: {r.status_code} {r.text[:300]}")
                    continue
                job_id = r.json()["job"]["id"]
                while (job := client.get(f"/v1/ingest/{job_id}").json())["state"] in (
                    "queued",
                    "running",
                ):
                    time.sleep(0.05)
                if job["state"] != "succeeded":
                    failures.append(f"upload {name}: job {job}")
                if round_ % 2 == 0:  # every other upload is removed again
                    r = client.delete(f"/v1/documents/{name}")
                    statuses["delete"].append(r.status_code)
                    if r.status_code != 200:
                        failures.append(f"delete {name}: {r.status_code} {r.text[:300]}")

    try:
        wait_http(f"{url}/readyz", server, log, timeout=180)
        threads = [threading.Thread(target=asker, args=(n,), daemon=True) for n in range(ASKERS)]
        threads.append(threading.Thread(target=writer, daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(min(15.0, SOAK_SECONDS / 4))  # warm-up: caches filled, models loaded
        rss_warm, fds_warm = _rss_and_fds(server.pid)
        time.sleep(SOAK_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(150)
        rss_end, fds_end = _rss_and_fds(server.pid)
        assert server.poll() is None, log.read_text()[-3000:]
    finally:
        stop.set()
        stop_process(server)

    asked = len(statuses["ask"])
    assert asked >= 20 and len(statuses["search"]) >= 5, statuses
    assert len(statuses["upload"]) >= 4 and len(statuses["delete"]) >= 2, statuses
    assert not failures, failures[:10]
    assert not problems, problems[:10]
    # memory and descriptors do not grow with the number of requests served
    assert rss_end <= rss_warm * 1.2 + 40 * 2**20, (rss_warm, rss_end)
    assert fds_end <= fds_warm + 16, (fds_warm, fds_end)
    print(
        f"soak {SOAK_SECONDS:.0f} s: {asked} asks, {len(statuses['search'])} searches, "
        f"{len(statuses['upload'])} uploads, {len(statuses['delete'])} deletes; RSS "
        f"{rss_warm / 2**20:.0f} -> {rss_end / 2**20:.0f} MB, fds {fds_warm} -> {fds_end}"
    )
