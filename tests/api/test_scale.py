"""Scaling out: a real Chroma server (`chroma run` on 127.0.0.1), several API workers sharing
one index folder, Chroma and Ollama behind credentials.

The fast tests run in the normal suite; the minutes-long ones (`rag eval` twice, two
`rag serve` workers under load) are marked slow.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rag.adapters.embedder import Embedder
from rag.adapters.lock import IndexLock
from rag.api.app import create_app
from rag.api.jobs.manager import JobManager
from rag.api.jobs.records import JobStatus
from rag.api.jobs.store import JobStore
from rag.config import Settings, describe_settings, load_settings
from rag.errors import ConfigError, IndexBusyError, IndexStateError, JobNotFoundError
from rag.indexing.ingest import IngestReport, Progress
from tests.api_support import LiveServer, stop_process, wait_http
from tests.conftest import CORPUS, PUTIN_2000, PUTIN_2000_LINES, REPO, free_port, make_runtime
from tests.ollama_wire import MODEL, july_2000_answer

BIN = Path(sys.executable).parent
CHROMA, RAG = str(BIN / "chroma"), str(BIN / "rag")
GOLDEN = REPO / "eval" / "golden.jsonl"


def _name() -> str:
    """A collection name of its own: every test's index shares the one Chroma server."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server on 127.0.0.1 (its URL), stopped after the module."""
    home = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = home / "chroma.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CHROMA, "run", "--path", str(home / "db"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", proc, log, timeout=60)
        yield url
    finally:
        stop_process(proc)


def _small_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "falcon.md").write_text(
        "# Project Falcon\n\nProject Falcon's test flight took place over Lake Vostok.\n"
        "The flight lasted 47 minutes and reached 9,300 metres.\n"
    )
    (folder / "heron.txt").write_text(
        "The Heron rover was assembled in Tromsø by a crew of eleven engineers.\n"
        "Its batteries last for nineteen days on the polar plateau.\n"
    )
    return folder


# -- settings -------------------------------------------------------------------------------
def test_credentials_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(chroma_url="http://chroma:8000", chroma_auth_token="tok-1")  # type: ignore[arg-type]
    assert s.chroma_headers() == {"Authorization": "Bearer tok-1"}
    s = Settings(chroma_auth_token="tok-1", chroma_auth_header="X-Chroma-Token")  # type: ignore[arg-type]
    assert s.chroma_headers() == {"X-Chroma-Token": "tok-1"}
    assert Settings().chroma_headers() == {} and Settings().ollama_request_headers() == {}

    monkeypatch.setenv("RAG_OLLAMA_API_KEY", "key-2")
    monkeypatch.setenv("RAG_OLLAMA_HEADERS", '{"X-Team": "search", "X-Secret": "hdr-3"}')
    monkeypatch.setenv("RAG_CHROMA_AUTH_TOKEN", "tok-4")
    settings = load_settings()
    assert settings.ollama_request_headers() == {
        "Authorization": "Bearer key-2",
        "X-Team": "search",
        "X-Secret": "hdr-3",
    }
    shown = repr(describe_settings(settings))
    assert not any(secret in shown for secret in ("key-2", "hdr-3", "tok-4"))

    monkeypatch.setenv("RAG_OLLAMA_HEADERS", '{"Authorization": "Basic dTpw"}')
    assert load_settings().ollama_request_headers() == {"Authorization": "Basic dTpw"}
    for bad in ('["a"]', "{nope", '{"Bad Name": "x"}', '{"X-A": "a\\r\\nX-B: b"}'):
        monkeypatch.setenv("RAG_OLLAMA_HEADERS", bad)
        with pytest.raises(ConfigError, match="ollama_headers"):
            load_settings()
    monkeypatch.delenv("RAG_OLLAMA_HEADERS")
    monkeypatch.setenv("RAG_CHROMA_AUTH_HEADER", "X Token")
    with pytest.raises(ConfigError, match="chroma_auth_header"):
        load_settings()


# -- Chroma behind credentials ---------------------------------------------------------------
class TokenProxy:
    """A loopback proxy in front of the Chroma server that passes only requests carrying the
    expected header (as an authenticating proxy or a hosted Chroma would)."""

    def __init__(self, upstream: str, header: str, expected: str) -> None:
        self.upstream, self.header, self.expected = upstream, header, expected
        self.seen: list[str | None] = []
        self.server = HTTPServer(host="127.0.0.1", port=free_port())
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._forward)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def _forward(self, request: Request) -> Response:
        got = request.headers.get(self.header)
        self.seen.append(got)
        if got != self.expected:
            return Response('{"error": "Unauthorized"}', 401, content_type="application/json")
        query = request.query_string.decode()
        reply = httpx.request(
            request.method,
            self.upstream + request.path + (f"?{query}" if query else ""),
            content=request.get_data(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
            timeout=60,
        )
        kind = reply.headers.get("content-type", "application/json")
        return Response(reply.content, reply.status_code, content_type=kind)

    def __enter__(self) -> TokenProxy:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.clear()
        self.server.stop()


def test_chroma_token_is_sent_with_every_request(
    chroma: str, tmp_path: Path, embedder: Embedder
) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    with TokenProxy(chroma, "Authorization", "Bearer s3cret-tok") as proxy:
        runtime = make_runtime(
            tmp_path, embedder, corpus, chroma_url=proxy.url, chroma_auth_token="s3cret-tok",
            collection=_name(), llm_backend="extractive",
        )  # fmt: skip
        report = runtime.ingest_service().ingest()
        assert report.files_indexed == 2
        answer = runtime.answer_service.ask("How long did Project Falcon's test flight last?")
        assert [c.path for c in answer.citations] == ["falcon.md"]
        assert len(proxy.seen) > 5 and set(proxy.seen) == {"Bearer s3cret-tok"}

    with TokenProxy(chroma, "X-Chroma-Token", "right") as proxy:
        from rag.adapters.store import ChromaStore

        wrong = Settings(
            chroma_url=proxy.url,
            chroma_auth_token="wrong-tok",  # type: ignore[arg-type]
            chroma_auth_header="X-Chroma-Token",
        )
        with pytest.raises(ConfigError) as caught:
            ChromaStore(wrong, runtime.index_info, "any")
        assert "refused the credentials" in caught.value.message
        assert "RAG_CHROMA_AUTH_TOKEN" in caught.value.hint
        assert "wrong-tok" not in str(caught.value) and proxy.seen == ["wrong-tok"]


# -- remote Ollama with headers --------------------------------------------------------------
def test_remote_ollama_receives_auth_headers(tmp_path: Path, embedder: Embedder) -> None:
    """A remote Ollama (any host:port) gets the API key and extra headers on every request,
    the model probe included, and the answer streams back cited."""
    seen: list[dict[str, str]] = []

    def tags(request: Request) -> Response:
        seen.append(dict(request.headers))
        model = {"name": MODEL, "model": MODEL, "modified_at": "2026-11-01T00:00:00Z",
                 "size": 1, "digest": "sha256:0", "details": {}}  # fmt: skip
        return Response(json.dumps({"models": [model]}), content_type="application/json")

    def chat(request: Request) -> Response:
        seen.append(dict(request.headers))
        body = july_2000_answer(request.get_json()["messages"][-1]["content"])
        return Response(body, content_type="application/x-ndjson")

    port = free_port()
    assert port != 11434
    server = HTTPServer(host="127.0.0.1", port=port)
    server.expect_request("/api/tags").respond_with_handler(tags)
    server.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    server.start()
    try:
        runtime = make_runtime(
            tmp_path, embedder, ollama_host=f"127.0.0.1:{port}", ollama_api_key="k-remote-1",
            ollama_headers={"X-Tenant": "team-a"},
        )  # fmt: skip
        runtime.ingest_service().ingest()
        tokens: list[str] = []
        answer = runtime.answer_service.ask(PUTIN_2000, on_token=tokens.append)
    finally:
        server.clear()
        server.stop()
    assert answer.backend == "ollama" and f"127.0.0.1:{port}" in answer.backend_reason
    assert tokens == [answer.answer]  # the one sentence, sent once it was verified
    assert answer.answer.startswith("Putin last visited North Korea")
    assert {(c.path, c.start_line) for c in answer.citations} <= PUTIN_2000_LINES
    assert answer.citations and all(c.verified for c in answer.citations)
    assert len(seen) >= 2  # the probe (/api/tags) and the answer (/api/chat)
    for headers in seen:
        assert headers["Authorization"] == "Bearer k-remote-1"
        assert headers["X-Tenant"] == "team-a"


# -- one process's view of another's writes ---------------------------------------------------
def test_a_worker_follows_another_workers_writes(
    chroma: str, tmp_path: Path, embedder: Embedder
) -> None:
    """Two runtimes on one index folder and one Chroma server stand for two API workers:
    what one writes (documents, a new generation) the other's next request sees."""
    from rag.api.app import create_app

    corpus = _small_corpus(tmp_path / "corpus")
    common = {"chroma_url": chroma, "collection": _name(), "llm_backend": "extractive",
              "exact_search": True}  # fmt: skip
    writer = make_runtime(tmp_path, embedder, corpus, **common)
    reader = make_runtime(tmp_path, embedder, corpus, **common, hybrid=False)  # vectors only
    services = create_app(reader.settings, reader).state.services  # the API's dependency

    def found(question: str) -> list[Any]:
        return services.answer_service().retrieve(question, 3).passages

    writer.ingest_service().ingest()
    assert found("Where was the Heron rover assembled?")[0].chunk.path == "heron.txt"
    (corpus / "osprey.txt").write_text("The Osprey glider was first flown in Sørfold in 2029.\n")
    writer.ingest_service().ingest()  # the reader's exact-search cache must not hide it
    assert found("Where was the Osprey glider first flown?")[0].chunk.path == "osprey.txt"

    first = reader.generation
    assert first is not None
    rebuilt = make_runtime(tmp_path, embedder, corpus, **common, chunk_size=32)
    assert rebuilt.ingest_service().ingest().switched  # a new generation; the old one dropped
    passages = found("Where was the Heron rover assembled?")
    assert passages[0].chunk.path == "heron.txt"
    assert {p.chunk.id for p in passages} <= rebuilt.store.all_ids()
    assert reader.generation is not None and reader.generation.id == first.id + 1


def test_an_index_folder_never_takes_over_another_ones_collection(
    chroma: str,
    tmp_path: Path,
    embedder: Embedder,
) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    name = _name()
    first = make_runtime(tmp_path / "a", embedder, corpus, chroma_url=chroma, collection=name)
    first.ingest_service().ingest()
    second = make_runtime(tmp_path / "b", embedder, corpus, chroma_url=chroma, collection=name)
    with pytest.raises(IndexStateError, match="own RAG_COLLECTION"):
        second.ingest_service().ingest()
    assert first.store.count() > 0  # untouched


def test_a_store_that_lost_its_vectors_is_detected_and_refilled(
    chroma: str,
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
    cli_env: dict[str, str],
) -> None:
    """An index folder built embedded, then pointed at a new, empty Chroma server: the
    manifest lists chunks the store does not hold.  Ingest says so and embeds them again
    (it used to count every file "unchanged" and leave an index that answered nothing)."""
    corpus = _small_corpus(tmp_path / "corpus")
    name = _name()
    built = make_runtime(tmp_path, embedder, corpus, collection=name)
    built.ingest_service().ingest()
    listed = built.store.count()
    assert listed > 0
    env = {**cli_env, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(tmp_path / "index"),
           "RAG_CHROMA_URL": chroma, "RAG_COLLECTION": name}  # fmt: skip

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RAG, *args], env=env, capture_output=True, text=True, timeout=300)

    stale = rag("ingest", "--if-stale")
    assert stale.returncode == 0, stale.stderr
    assert f"the vector store holds 0 chunks; the manifest lists {listed}" in stale.stderr
    assert "indexed 2 file(s)" in stale.stderr and "0 unchanged" in stale.stderr
    assert rag("status").returncode == 0  # in sync again
    asked = rag("ask", "Where was the Heron rover assembled?", "--json")
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and "Tromsø" in answer["answer"]


def test_serve_reports_a_store_that_lost_its_vectors_at_start_up(
    chroma: str,
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    name = _name()
    built = make_runtime(tmp_path, embedder, corpus, collection=name)
    built.ingest_service().ingest()
    listed = built.store.count()
    served = make_runtime(tmp_path, embedder, corpus, collection=name, chroma_url=chroma)
    with caplog.at_level(logging.WARNING), LiveServer(create_app(served.settings, served)) as live:
        documents = httpx.get(f"{live.url}/v1/documents", timeout=30).json()
    assert f"the vector store holds 0 chunks; the manifest lists {listed}" in caplog.text
    assert documents["chunks"] < listed  # the files that lost their vectors are unfinished
    report = served.ingest_service().ingest()  # the next ingest embeds them again
    assert report.files_indexed == 2 and served.store.count() == listed


# -- the same answers as embedded mode ---------------------------------------------------------
def test_server_mode_answers_like_embedded_mode(
    chroma: str, tmp_path: Path, embedder: Embedder
) -> None:
    """Ingest, ask, search and delete give the same results with a Chroma server as with the
    embedded store (exact search: deterministic)."""
    from rag.evaluation.golden import load_golden
    from rag.evaluation.runner import question_row

    questions = load_golden(GOLDEN)
    sample = [q for q in questions if q.answerable][:6] + [
        q for q in questions if not q.answerable
    ][:2]
    runtimes = {
        "embedded": make_runtime(tmp_path / "e", embedder, llm_backend="extractive",
                                 exact_search=True),
        "server": make_runtime(tmp_path / "s", embedder, chroma_url=chroma, collection=_name(),
                               llm_backend="extractive", exact_search=True),
    }  # fmt: skip

    def snapshot(runtime: Any, questions: list[Any]) -> dict[str, Any]:
        rows = [question_row(q, runtime, "extractive", 5) for q in questions]
        for row in rows:
            row.pop("latency_ms")
        found = runtime.answer_service.retrieve("Kim Jong Un airport greeting", 5).passages
        files = runtime.manifest.files(runtime.generation.id)
        docs = {path: len(entry.chunk_ids) for path, entry in files.items()}
        return {
            "rows": rows,
            "search": [(p.chunk.id, p.score) for p in found],
            "documents": docs,
            "chunks": (runtime.store.count(), runtime.lexical.count()),
        }

    before, after = {}, {}
    for mode, runtime in runtimes.items():
        report = runtime.ingest_service().ingest()
        assert report.files_indexed == 5
        before[mode] = snapshot(runtime, sample)
        assert sum(r["correct"] for r in before[mode]["rows"]) >= 4
        assert runtime.ingest_service().delete_document("004_5e50463e41e8a191.txt") is not None
        after[mode] = snapshot(runtime, sample[:3])
        assert "004_5e50463e41e8a191.txt" not in after[mode]["documents"]
    assert before["server"] == before["embedded"]
    assert after["server"] == after["embedded"]
    assert after["server"]["chunks"][0] < before["server"]["chunks"][0]


# -- API workers: refusing, shared job records, waiting for another writer ---------------------
def test_serve_refuses_several_workers_on_an_embedded_index(cli_env: dict[str, str]) -> None:
    for args, env in (
        (["--workers", "2"], cli_env),
        ([], {**cli_env, "RAG_WORKERS": "3"}),
    ):
        run = subprocess.run(
            [RAG, "serve", "--port", str(free_port()), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        assert "cannot share the embedded Chroma index" in run.stderr
        assert "hint:" in run.stderr and "RAG_CHROMA_URL" in run.stderr


class _SlowIngest:
    """An ingest that reports progress and finishes when told to."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def __call__(self, progress: Progress, paths: list[Path]) -> IngestReport:
        progress.start("read", 2)
        progress.advance("read", 2)
        assert self.go.wait(60)
        return IngestReport(files_seen=2, files_indexed=2, chunks_written=5, chunks_total=5)


def _until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def _manager(index: Path, ingest: Any) -> JobManager:
    lock = lambda wait: IndexLock(index, "rag serve (ingest)", wait)  # noqa: E731
    return JobManager(ingest, queue_limit=4, store=JobStore(index), lock=lock)


def test_any_worker_reports_any_workers_job(tmp_path: Path) -> None:
    ingest = _SlowIngest()
    one, other = _manager(tmp_path, ingest), _manager(tmp_path, None)
    try:
        job = one.submit([tmp_path], ["."], "paths")
        seen = _until(lambda: "read" in (s := other.get(job.id)).progress and s)
        assert seen.state == "running" and seen.phase == "read" and seen.paths == ["."]
        assert seen.progress["read"].done == seen.progress["read"].total == 2
        ingest.go.set()
        done = _until(lambda: (s := other.get(job.id)).state == "succeeded" and s)
        assert done == one.get(job.id)
        assert done.files.indexed == 2 and done.chunks.total == 5 and done.finished_at
        with pytest.raises(JobNotFoundError):
            other.get(uuid.uuid4().hex)
    finally:
        ingest.go.set()
        one.close()
        other.close()


def test_a_job_whose_worker_died_is_reported_failed(tmp_path: Path) -> None:
    status = JobStatus(id=uuid.uuid4().hex, state="running", source="paths", paths=["."],
                       created_at="2026-11-23T10:00:00+00:00")  # fmt: skip
    code = (
        "import sys; from pathlib import Path; from rag.api.jobs.records import JobStatus; "
        "from rag.api.jobs.store import JobStore; "
        "JobStore(Path(sys.argv[1])).put(JobStatus.model_validate_json(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), status.model_dump_json()],
        check=True,
        cwd=REPO,
        timeout=120,
    )
    got = JobStore(tmp_path).get(status.id)
    assert got is not None and got.state == "failed"
    assert got.errors[0].code == "worker_gone"


def test_a_job_waits_while_another_worker_writes(tmp_path: Path) -> None:
    """Queued (phase ``waiting``) past RAG_LOCK_WAIT while another process holds the
    writer lock, then runs; a deletion meanwhile is refused with 503, naming the writer."""
    code = (
        "import sys; from pathlib import Path; from rag.adapters.lock import IndexLock; "
        "IndexLock(Path(sys.argv[1]), 'rag serve (other worker)', 10).acquire(); "
        "print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    ingest = _SlowIngest()
    ingest.go.set()
    jobs = _manager(tmp_path, ingest)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        job = jobs.submit([tmp_path], ["."], "paths")
        time.sleep(Settings().lock_wait + 1.0)
        waiting = jobs.get(job.id)
        assert waiting.state == "queued" and waiting.phase == "waiting"
        deleting = _manager(tmp_path, None)  # e.g. DELETE /v1/documents on a third worker
        with pytest.raises(IndexBusyError, match="other worker"), deleting.writing(0.2, True):
            pass
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
    done = _until(lambda: (s := jobs.get(job.id)).state not in ("queued", "running") and s)
    jobs.close()
    assert done.state == "succeeded" and done.errors == []


# -- end to end: `rag eval` and two `rag serve` workers (slow) ---------------------------------
def _rows(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("latency_ms")
    return rows


@pytest.mark.slow
def test_rag_eval_against_a_chroma_server_matches_embedded(
    chroma: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out: dict[str, Path] = {}
    for mode, extra in (("embedded", {}), ("server", {"RAG_CHROMA_URL": chroma})):
        out[mode] = tmp_path / mode
        run = subprocess.run(
            [
                RAG,
                "eval",
                "--corpus",
                str(CORPUS),
                "--golden",
                str(GOLDEN),
                "--out",
                str(out[mode]),
            ],
            env={**cli_env, **extra},
            capture_output=True,
            text=True,
            timeout=580,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    rows = _rows(out["server"])
    assert len(rows) == 91 and rows == _rows(out["embedded"])
    assert sum(bool(r["correct"]) for r in rows) > 45
    import chromadb

    port = int(chroma.rsplit(":", 1)[1])
    left = [c.name for c in chromadb.HttpClient(host="127.0.0.1", port=port).list_collections()]
    assert not [n for n in left if n.startswith("rag-eval-")]  # the temporary index is gone


TEAM_DOCS = {
    f"team/note{i}.txt": "\n".join(
        f"Team note {i}, item {j}: the Kestrel-{i} sensor logged {100 * i + j} readings "
        f"at station {chr(65 + j)} during the {2020 + i} winter campaign."
        for j in range(12)
    )
    + "\n"
    for i in range(8)
}


@pytest.mark.slow
def test_two_workers_serve_concurrent_clients_during_an_ingest(
    chroma: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = {
        **cli_env,
        "RAG_CHROMA_URL": chroma,
        "RAG_COLLECTION": _name(),
        "RAG_INDEX_DIR": str(tmp_path / "index"),
        "RAG_CORPUS_DIR": str(corpus),
    }
    subprocess.run([RAG, "ingest"], env=env, check=True, capture_output=True, timeout=300)
    for rel, text in TEAM_DOCS.items():  # written now: the API ingests them below
        (corpus / rel).parent.mkdir(exist_ok=True)
        (corpus / rel).write_text(text)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [RAG, "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    statuses: list[tuple[str, int]] = []
    answers: set[str] = set()
    stop = threading.Event()

    def client(n: int) -> None:
        while not stop.is_set():
            if n % 2:
                r = httpx.post(f"{url}/v1/search", json={"query": "Putin airport"}, timeout=120)
                statuses.append(("search", r.status_code))
            else:
                r = httpx.post(f"{url}/v1/ask", json={"question": PUTIN_2000}, timeout=120)
                statuses.append(("ask", r.status_code))
                if r.status_code == 200:
                    answers.add(r.json()["answer"])

    try:
        deadline = time.monotonic() + 240
        ready = 0
        while ready < 6:  # fresh connections: both workers must answer
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                ok = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.2)
        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        accepted = httpx.post(f"{url}/v1/ingest", json={"paths": ["team"]}, timeout=60)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job"]["id"]
        polls: list[int] = []
        while True:  # each poll a new connection: it may land on either worker
            r = httpx.get(f"{url}/v1/ingest/{job_id}", timeout=30)
            polls.append(r.status_code)
            assert r.status_code == 200, r.text
            job = r.json()
            if job["state"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline + 300
            time.sleep(0.2)
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(150)
        assert job["state"] == "succeeded" and job["files"]["indexed"] == len(TEAM_DOCS), job

        assert len(statuses) > 8 and {s for _, s in statuses} == {200}, statuses
        # one answer from both workers, throughout; which of the corpus's two July-2000 lines
        # ("…to North Korea…", "…to Pyongyang…") the reader prefers is the model's call
        assert len(answers) == 1 and "last visit to" in (said := next(iter(answers)))
        assert "July 2000" in said
        views = set()
        for _ in range(20):
            docs = httpx.get(f"{url}/v1/documents", timeout=30).json()
            views.add((docs["count"], docs["chunks"], docs["index_version"]))
        assert len(views) == 1 and next(iter(views))[:2] == (
            5 + len(TEAM_DOCS),
            job["chunks"]["total"],
        )
        for _ in range(10):
            ready_now = httpx.get(f"{url}/readyz", timeout=30).json()["index"]
            assert ready_now["chunks"] == job["chunks"]["total"]
            found = httpx.post(
                f"{url}/v1/search",
                json={"query": "Kestrel-3 sensor station C readings"},
                timeout=60,
            ).json()["passages"]
            assert found[0]["path"] == "team/note3.txt"
        gone = httpx.delete(f"{url}/v1/documents/team/note7.txt", timeout=60)
        assert gone.status_code == 200, gone.text
        counts = {httpx.get(f"{url}/v1/documents", timeout=30).json()["count"] for _ in range(10)}
        assert counts == {4 + len(TEAM_DOCS)}
    finally:
        stop.set()
        stop_process(server)
    text = log.read_text()
    assert len(set(re.findall(r"Started server process \[(\d+)\]", text))) >= 2, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
