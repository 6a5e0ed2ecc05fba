"""The API's small parts on their own: path checks, names, Host matching, metrics, CORS."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.api.app import create_app
from rag.api.errors import OverloadedError
from rag.api.limits import Gate
from rag.api.metrics import Metrics
from rag.api.middleware import host_allowed, host_of, template_pattern
from rag.api.paths import (
    PathNotAllowedError,
    PathNotFoundError,
    PathPolicy,
    check_text,
    sanitize_name,
)
from rag.config import Settings, load_settings
from rag.errors import InputError
from tests.api_support import LiveServer


@pytest.mark.parametrize(
    "raw",
    ["..", "a/../b", "%2e%2e/x", "%2E%2e", "%252e%252e/x", "a/..%2Fb", "..\\x", " .. "],
)
def test_climbing_is_refused(raw: str) -> None:
    with pytest.raises(PathNotAllowedError):
        check_text(raw)


@pytest.mark.parametrize("raw", ["a\x00b", "a%00b", "a%2500b"])
def test_nul_is_refused(raw: str) -> None:
    with pytest.raises(InputError):
        check_text(raw)


@pytest.mark.parametrize("raw", ["notes/a.txt", "...", "a..b", "%2e", ".hidden"])
def test_ordinary_names_pass(raw: str) -> None:
    check_text(raw)


def test_policy_resolves_inside_and_refuses_outside(tmp_path: Path) -> None:
    corpus, other, outside = tmp_path / "c", tmp_path / "o", tmp_path / "x"
    for folder in (corpus / "sub", other, outside):
        folder.mkdir(parents=True)
    (corpus / "sub" / "a.txt").write_text("a\n")
    (outside / "s.txt").write_text("s\n")
    (corpus / "sub" / "out.txt").symlink_to(outside / "s.txt")
    (corpus / "in.txt").symlink_to(corpus / "sub" / "a.txt")
    policy = PathPolicy(
        Settings(corpus_dir=corpus, allowed_roots=[corpus, other])  # type: ignore[call-arg]
    )
    assert policy.resolve("sub/a.txt") == (corpus / "sub" / "a.txt").resolve()
    assert policy.resolve("in.txt") == (corpus / "sub" / "a.txt").resolve()
    assert policy.resolve(str(other)) == other.resolve()
    for bad in ("sub/out.txt", str(outside), "/", str(tmp_path)):
        with pytest.raises(PathNotAllowedError):
            policy.resolve(bad)
    with pytest.raises(PathNotFoundError):
        policy.resolve("nope.txt")
    paths, skipped = policy.resolve_all(["sub", "sub/a.txt", "sub"])
    assert paths == [(corpus / "sub").resolve(), (corpus / "sub" / "a.txt").resolve()]
    assert [s for s, _ in skipped] == ["sub/out.txt"]


def test_a_folder_whose_ingest_would_follow_a_link_out_of_the_roots_is_refused(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "c"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "private.txt").write_text("p\n")
    (corpus / "notes" / "p.txt").symlink_to(corpus / "private.txt")
    narrow = Settings(corpus_dir=corpus, allowed_roots=[corpus / "notes"])  # type: ignore[call-arg]
    with pytest.raises(PathNotAllowedError, match="holds a link"):
        PathPolicy(narrow).resolve_all([str(corpus / "notes")])


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\a b.md", "a b.md"),
        (".bashrc", "bashrc"),
        ("..", "upload.txt"),
        ("", "upload.txt"),
        ("a\x00b?.txt", "ab_.txt"),
        ("x" * 300 + ".txt", "x" * 116 + ".txt"),  # 120 characters
    ],
)
def test_upload_names_are_sanitized(given: str, stored: str) -> None:
    assert sanitize_name(given) == stored


def test_uploads_stay_in_the_uploads_folder(tmp_path: Path) -> None:
    import io

    corpus = tmp_path / "c"
    corpus.mkdir()
    policy = PathPolicy(Settings(corpus_dir=corpus))  # type: ignore[call-arg]
    stored = policy.store_uploads([("../a.txt", io.BytesIO(b"1")), ("a.txt", io.BytesIO(b"2"))])
    assert [p.name for p in stored] == ["a.txt", "a-2.txt"]
    assert all(p.parent == (corpus / "uploads").resolve() for p in stored)
    assert not (tmp_path / "a.txt").exists()
    assert not [p for p in (corpus / "uploads").iterdir() if p.name.startswith(".upload.")]


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("LocalHost", "localhost"),
        ("::1", "::1"),
        ("", ""),
    ],
)
def test_host_of(header: str, host: str) -> None:
    assert host_of(header) == host


def test_host_patterns() -> None:
    assert host_allowed("api.example.org", ["*.example.org"])
    assert not host_allowed("example.org.evil", ["*.example.org"])
    assert not host_allowed("evil.example", ["127.0.0.1", "localhost"])
    assert host_allowed("::1", ["[::1]"])


def test_route_templates() -> None:
    assert template_pattern("/v1/documents/{path}").match("/v1/documents/a/b%20c.txt")
    assert template_pattern("/v1/ingest/{job_id}").match("/v1/ingest/abc")
    assert not template_pattern("/v1/ask").match("/v1/ask/x")


def test_metrics_text_format() -> None:
    metrics = Metrics()
    metrics.requests.inc("GET", '/a"b', "200")
    metrics.latency.observe(0.2, "GET", "/x")
    metrics.latency.observe(7.0, "GET", "/x")
    text = metrics.render()
    assert 'rag_http_requests_total{method="GET",route="/a\\"b",status="200"} 1' in text
    assert 'rag_http_request_duration_seconds_bucket{method="GET",route="/x",le="0.25"} 1' in text
    assert 'rag_http_request_duration_seconds_bucket{method="GET",route="/x",le="+Inf"} 2' in text
    assert 'rag_http_request_duration_seconds_sum{method="GET",route="/x"} 7.2' in text


def test_gate_refuses_or_times_out() -> None:
    async def scenario() -> list[int]:
        gate = Gate("ollama", slots=1, queue=1, wait=0.2, metrics=Metrics())
        taken = await gate.acquire()
        waiter = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.05)
        statuses = []
        try:
            await gate.acquire()
        except OverloadedError as exc:
            statuses.append(exc.status)
        try:
            await waiter
        except OverloadedError as exc:
            statuses.append(exc.status)
        await gate.release(taken)
        await gate.release(await gate.acquire())  # free again
        return statuses

    assert asyncio.run(scenario()) == [429, 503]


def test_list_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ALLOWED_ROOTS", f"/srv/a{os.pathsep}/srv/b")
    monkeypatch.setenv("RAG_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("RAG_TRUSTED_HOSTS", '["rag.lan"]')
    monkeypatch.setenv("RAG_API_KEY", "k-123")
    s = load_settings()
    assert s.allowed_roots == [Path("/srv/a"), Path("/srv/b")]
    assert s.cors_origins == ["http://a.example", "http://b.example"]
    assert s.trusted_hosts == ["rag.lan"]
    assert s.api_key is not None and "k-123" not in repr(s)


def _app(tmp_path: Path, **overrides: Any) -> Any:
    settings = Settings(  # type: ignore[call-arg]
        corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", **overrides
    )
    return create_app(settings)


def test_cors_is_off_unless_origins_are_listed(tmp_path: Path) -> None:
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    with LiveServer(_app(tmp_path, llm_backend="extractive")) as live:
        r = httpx.options(f"{live.url}/v1/ask", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with LiveServer(
        _app(tmp_path, llm_backend="extractive", cors_origins=["http://app.example"])
    ) as live:
        r = httpx.options(f"{live.url}/v1/ask", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        r = httpx.options(f"{live.url}/v1/ask", headers={**preflight, "Origin": "http://evil"})
        assert "access-control-allow-origin" not in r.headers
        ready = httpx.get(f"{live.url}/readyz")  # no index yet: alive, not ready
        assert ready.status_code == 503 and ready.json()["index"]["opened"] is False
