"""The interface every generating backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from rag.prompts import RenderedPrompt


class LLM(Protocol):
    backend: str  # "ollama" or "llamacpp"
    model: str
    prompt_name: str  # the prompt file that suits this backend
    evidence: Literal["passages", "sentences"]  # whole passages, or the best sentences

    def stream(self, prompt: RenderedPrompt, max_tokens: int) -> Iterator[str]:
        """Yield the answer's text as it is generated; raise an LLMError on failure."""
        ...
