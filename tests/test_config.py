"""Settings: defaults, environment, OLLAMA_HOST forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings, load_settings, normalize_ollama_host
from rag.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("localhost:9999", "http://localhost:9999"),
        ("http://127.0.0.1:11434/", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("https://ollama.example:443", "https://ollama.example:443"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_ollama_host_forms(given: str, url: str) -> None:
    assert normalize_ollama_host(given) == url


def test_defaults_are_safe() -> None:
    s = Settings()
    assert s.host == "127.0.0.1" and s.port == 8000
    assert s.corpus_dir == Path("data/corpus") and s.index_dir == Path("data/index")
    assert s.chroma_url is None and s.llm_backend == "auto"
    assert s.embedding_model == "all-MiniLM-L6-v2"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:7777")
    monkeypatch.setenv("RAG_LLM_BACKEND", "extractive")
    monkeypatch.setenv("RAG_CHUNK_SIZE", "64")
    s = load_settings()
    assert s.ollama_host == "http://127.0.0.1:7777"
    assert s.llm_backend == "extractive" and s.chunk_size == 64
    monkeypatch.setenv("RAG_OLLAMA_HOST", "127.0.0.1:8888")
    assert load_settings().ollama_host == "http://127.0.0.1:8888"


def test_overrides_win_and_none_means_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TOP_K", "9")
    assert load_settings(top_k=None).top_k == 9
    assert load_settings(top_k=3).top_k == 3


def test_invalid_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_LLM_BACKEND", "gpt4")
    with pytest.raises(ConfigError, match="llm_backend"):
        load_settings()
