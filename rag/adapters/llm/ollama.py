"""Ollama over HTTP through the official client, with real timeouts and honest errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from rag.config import Settings
from rag.errors import (
    LLMError,
    LLMStreamError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelNotFoundError,
)
from rag.prompts import RenderedPrompt

CHARS_PER_TOKEN = 3.0  # conservative: real prompts average ~4 chars per token
CTX_STEP = 1024
MIN_CTX = 2048


def num_ctx_for(prompt: RenderedPrompt, max_tokens: int, ceiling: int) -> int:
    """A context window that holds the whole prompt plus the answer, so nothing is cut."""
    prompt_tokens = int((len(prompt.system) + len(prompt.user)) / CHARS_PER_TOKEN) + 32
    need = prompt_tokens + max_tokens
    ctx = max(MIN_CTX, -(-need // CTX_STEP) * CTX_STEP)
    return min(ctx, ceiling)


class OllamaLLM:
    backend = "ollama"
    evidence: Literal["passages", "sentences"] = "passages"
    prompt_name = "answer_chat"

    def __init__(self, settings: Settings, model: str | None = None) -> None:
        import ollama

        self.settings = settings
        self.host = settings.ollama_host
        self.model = model or settings.ollama_model
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.first_token_timeout,
            write=settings.connect_timeout,
            pool=settings.connect_timeout,
        )
        # Auth headers (RAG_OLLAMA_API_KEY, RAG_OLLAMA_HEADERS) for a remote Ollama; the
        # client keeps them on every request, including the probe's /api/tags.
        headers = settings.ollama_request_headers()
        self._client = ollama.Client(host=self.host, timeout=timeout, headers=headers or None)
        # Probes have their own short timeout: a server that accepts and never answers must
        # not hold start-up, /readyz or the CLI for the first-token timeout.
        self._probe_client = ollama.Client(
            host=self.host,
            timeout=httpx.Timeout(
                settings.probe_timeout,
                connect=min(settings.connect_timeout, settings.probe_timeout),
            ),
            headers=headers or None,
        )

    # -- availability -------------------------------------------------------
    def probe(self) -> None:
        """Raise unless the server answers (within RAG_PROBE_TIMEOUT) and has the model."""
        try:
            listing = self._probe_client.list()
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            raise LLMTimeoutError(
                f"Ollama at {self.host} accepted the connection but did not answer a probe "
                f"(/api/tags) within {self.settings.probe_timeout:g} s",
                "it may be stuck or overloaded: check `ollama ps` and its log, or raise "
                "RAG_PROBE_TIMEOUT",
            ) from None
        except Exception as exc:
            raise self._translate(exc) from None
        names = set()
        for m in listing.models:
            name = m.model or ""
            names.add(name)
            if name.endswith(":latest"):
                names.add(name[: -len(":latest")])
        if self.model not in names and f"{self.model}:latest" not in names:
            raise self._missing()

    # -- generation ---------------------------------------------------------
    def stream(self, prompt: RenderedPrompt, max_tokens: int) -> Iterator[str]:
        messages = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        messages.append({"role": "user", "content": prompt.user or prompt.text})
        options = {
            "num_ctx": num_ctx_for(prompt, max_tokens, self.settings.ollama_max_ctx),
            "num_predict": max_tokens,
            "temperature": self.settings.temperature,
            "seed": 0,
        }
        deadline = time.monotonic() + self.settings.total_timeout
        done = False
        try:
            parts = self._client.chat(
                model=self.model, messages=messages, stream=True, options=options
            )
            for part in parts:
                text = part.message.content if part.message else ""
                if text:
                    yield text
                if part.done:
                    done = True
                    break
                if time.monotonic() > deadline:
                    raise LLMTimeoutError(
                        f"Ollama did not finish within {self.settings.total_timeout:g} s",
                        "raise RAG_TOTAL_TIMEOUT or use a smaller model",
                    )
        except LLMError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None
        if not done:
            raise LLMStreamError(
                "Ollama's answer stream ended before it was complete (no done=true)",
                "the server may have restarted or run out of memory; check `ollama ps` and retry",
            )

    # -- errors -------------------------------------------------------------
    def _missing(self) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"Ollama at {self.host} does not have the model {self.model!r}",
            f"run `ollama pull {self.model}`",
        )

    def _translate(self, exc: BaseException) -> LLMError:
        import ollama

        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                return self._missing()
            status = f" (HTTP {exc.status_code})" if exc.status_code > 0 else ""
            if exc.status_code in (401, 403):
                return LLMUnavailableError(
                    f"Ollama at {self.host} refused the request{status}",
                    "set RAG_OLLAMA_API_KEY or RAG_OLLAMA_HEADERS to the credentials the server "
                    "(or the proxy in front of it) expects",
                )
            return LLMUnavailableError(
                f"Ollama at {self.host} answered with an error: {exc.error}{status}",
                "check the Ollama server's log",
            )
        if isinstance(exc, (ConnectionError, httpx.ConnectError)):
            return LLMUnavailableError(
                f"Ollama is not reachable at {self.host}",
                "start it with `ollama serve`, or set OLLAMA_HOST to where it runs",
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return LLMTimeoutError(
                f"connecting to Ollama at {self.host} timed out after "
                f"{self.settings.connect_timeout:g} s",
                "check OLLAMA_HOST and that the server is up",
            )
        if isinstance(exc, (httpx.ReadTimeout, httpx.PoolTimeout, httpx.WriteTimeout)):
            return LLMTimeoutError(
                f"Ollama at {self.host} sent no token for {self.settings.first_token_timeout:g} s",
                "the model may still be loading or too slow; raise RAG_FIRST_TOKEN_TIMEOUT",
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, json.JSONDecodeError)):
            return LLMStreamError(
                f"Ollama's answer stream broke mid-way ({exc.__class__.__name__})",
                "retry; if it keeps happening check the Ollama server's log",
            )
        if isinstance(exc, httpx.HTTPError):
            return LLMUnavailableError(f"talking to Ollama at {self.host} failed: {exc}")
        return LLMError(f"Ollama failed: {exc.__class__.__name__}: {exc}")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "host": self.host}
