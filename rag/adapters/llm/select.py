"""Choosing a backend: explicit, or ``auto``: Ollama when it answers; else a GGUF model the
settings name (RAG_LLAMACPP_MODEL_PATH); else extractive.  The packaged Gemma 3 270M is
not chosen by ``auto``: its answers hold the gold answer less often than the extractive
reader's (README, "Backends")."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rag.adapters.llm.base import LLM
from rag.config import BACKENDS, Settings
from rag.errors import ConfigError, LLMError

log = logging.getLogger(__name__)


@dataclass
class Choice:
    backend: str  # "ollama", "llamacpp" or "extractive"
    llm: LLM | None  # None for extractive
    reason: str

    @property
    def model(self) -> str:
        return self.llm.model if self.llm else "none (extractive)"


def make_backend(settings: Settings, name: str) -> Choice:
    """Build the named backend; errors say why it cannot serve."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}", f"choose one of: {', '.join(BACKENDS)}")
    if name == "auto":
        return choose_auto(settings)
    if name == "extractive":
        return Choice("extractive", None, "requested")
    if name == "ollama":
        from rag.adapters.llm.ollama import OllamaLLM

        return Choice("ollama", OllamaLLM(settings), "requested")
    from rag.adapters.llm.llamacpp import LlamaCppLLM

    return Choice("llamacpp", LlamaCppLLM(settings), "requested")


def choose_auto(settings: Settings) -> Choice:
    from rag.adapters.llm.ollama import OllamaLLM

    ollama = OllamaLLM(settings)
    try:
        ollama.probe()
        choice = Choice("ollama", ollama, f"Ollama at {ollama.host} has {ollama.model}")
    except LLMError as exc:
        why_not_ollama = exc.message
        if settings.llamacpp_model_path is None:
            choice = Choice(
                "extractive",
                None,
                f"{why_not_ollama}; answering extractively (better measured than the packaged "
                "Gemma 3 270M; RAG_LLM_BACKEND=llamacpp uses it anyway)",
            )
            log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
            return choice
        try:
            from rag.adapters.llm.llamacpp import LlamaCppLLM

            llm = LlamaCppLLM(settings)
            choice = Choice("llamacpp", llm, f"{why_not_ollama}; using llama.cpp with {llm.model}")
        except LLMError as exc2:
            choice = Choice(
                "extractive", None, f"{why_not_ollama}; {exc2.message}; answering extractively"
            )
    log.info("LLM backend: %s (%s)", choice.backend, choice.reason)
    return choice
