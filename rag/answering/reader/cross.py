"""The cross reader: MiniLM fine-tuned to read a question and one candidate sentence
together (a cross-encoder), with two heads: a relevance logit (does this sentence answer the
question?) and start/end logits per token (where is the short answer in it?).

Shipped as int8 ONNX with 7-bit weights (per channel, reduce_range: the same integers on
every x86 CPU, as the embedder) beside its tokenizer and a description holding the SHA-256
of both, checked at load: a file that does not match is an error that says to run
``make train``.  Each pair runs alone (int8 activations are quantized per run, so a padded
batch would make a pair's scores depend on its neighbours).  Trained by
:mod:`rag.evaluation.cross_training`."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.adapters.onnx_int8 import side_by_side
from rag.errors import ReaderModelError

FORMAT = "rag-cross-reader/1"
CROSS_DIR = Path(__file__).parent / "cross"
MODEL_FILE = "cross.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "cross.json"
MAX_TOKENS = 128  # question and sentence together (longest first is cut)
MAX_SPAN_TOKENS = 30  # the longest short answer, in tokens
HINT = "run `make train` (or `rag train`) to rebuild the reader model"


@dataclass(frozen=True)
class Encoded:
    """One (question, sentence) pair as the network reads it."""

    ids: np.ndarray
    types: np.ndarray
    mask: np.ndarray
    sentence: np.ndarray  # bool per token: a token of the sentence (where a span may lie)
    offsets: np.ndarray  # (tokens, 2) character range in the sentence of each token


def tokenizer_for(data: str, max_tokens: int = MAX_TOKENS) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(data)
    tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
    tokenizer.no_padding()
    return tokenizer


def encode_pair(tokenizer: Any, question: str, sentence: str) -> Encoded:
    """The pair's tokens: [CLS] question [SEP] sentence [SEP], cut to the tokenizer's
    length (MAX_TOKENS for the cross reader)."""
    e = tokenizer.encode(question, sentence)
    types = np.asarray(e.type_ids, dtype=np.int64)
    special = np.asarray(e.special_tokens_mask, dtype=bool)
    return Encoded(
        ids=np.asarray(e.ids, dtype=np.int64),
        types=types,
        mask=np.asarray(e.attention_mask, dtype=np.int64),
        sentence=(types == 1) & ~special,
        offsets=np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2),
    )


@dataclass(frozen=True)
class CrossOutput:
    relevance: float  # logit: the sentence answers the question
    span: tuple[int, int] | None  # the short answer's characters in the sentence
    span_score: float  # start + end logit of that span


def best_span(
    encoded: Encoded, start: np.ndarray, end: np.ndarray
) -> tuple[tuple[int, int] | None, float]:
    """The highest start + end logit over spans of the sentence's tokens (end >= start,
    at most MAX_SPAN_TOKENS), as characters of the sentence."""
    where = np.flatnonzero(encoded.sentence)
    if where.size == 0:
        return None, float("-inf")
    s = start[where].astype(np.float64)
    e = end[where].astype(np.float64)
    total = s[:, None] + e[None, :]
    n = len(where)
    i, j = np.indices((n, n))
    total[(j < i) | (j - i >= MAX_SPAN_TOKENS)] = -np.inf
    a, b = np.unravel_index(int(np.argmax(total)), total.shape)
    first, last = int(where[a]), int(where[b])
    return (int(encoded.offsets[first, 0]), int(encoded.offsets[last, 1])), float(total[a, b])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CrossReader:
    """The int8 network and its tokenizer; :meth:`read` scores sentences for a question.
    ``model_file`` / ``meta_file``: another network of this shape and format (the verifier,
    :mod:`rag.answering.reader.verifier`); its description may set ``max_tokens``."""

    def __init__(
        self,
        folder: Path = CROSS_DIR,
        model_file: str = MODEL_FILE,
        meta_file: str = META_FILE,
        max_sessions: int = 2,
        threads: int = 1,
    ) -> None:
        meta_path = folder / meta_file
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReaderModelError(f"a reader model file is missing: {meta_path}", HINT) from None
        except (OSError, ValueError) as exc:
            raise ReaderModelError(f"cannot read {meta_path}: {exc}", HINT) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ReaderModelError(
                f"{meta_path} is not a {FORMAT} description (format "
                f"{meta.get('format') if isinstance(meta, dict) else None!r})",
                HINT,
            )
        for name in (model_file, TOKENIZER_FILE):
            path = folder / name
            if not path.is_file():
                raise ReaderModelError(f"a reader model file is missing: {path}", HINT)
            if sha256(path) != meta.get("sha256", {}).get(name):
                raise ReaderModelError(
                    f"{path} does not match its checksum in {meta_file} (damaged or replaced)",
                    HINT,
                )
        self.meta = meta
        self.tokenizer = tokenizer_for(
            (folder / TOKENIZER_FILE).read_text(encoding="utf-8"),
            int(meta.get("max_tokens", MAX_TOKENS)),
        )
        self._path = str(folder / model_file)
        self._max_sessions = max_sessions
        self._threads = threads
        self._sessions: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _new_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = self._threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self._path, options, providers=["CPUExecutionProvider"])

    @property
    def sessions(self) -> list[Any]:
        """One session per core (at most ``max_sessions``, each on ``threads`` threads), made
        on first use: a question's pairs run on them side by side; a pair's scores do not
        depend on which one runs it."""
        with self._lock:
            if not self._sessions:
                count = max(1, min(self._max_sessions, os.cpu_count() or 1))
                self._sessions = [self._new_session() for _ in range(count)]
                if count > 1:
                    self._pool = ThreadPoolExecutor(count, thread_name_prefix="rag-cross")
            return self._sessions

    def run(self, encoded: Encoded, session: Any = None) -> tuple[float, np.ndarray, np.ndarray]:
        """The network's outputs for one pair: relevance logit, start and end logits."""
        feed = {
            "input_ids": encoded.ids[None, :],
            "attention_mask": encoded.mask[None, :],
            "token_type_ids": encoded.types[None, :],
        }
        relevance, start, end = (session or self.sessions[0]).run(None, feed)
        return float(relevance[0]), start[0], end[0]

    def read(self, question: str, sentences: Sequence[str]) -> list[CrossOutput]:
        encoded = [encode_pair(self.tokenizer, question, s) for s in sentences]
        sessions = self.sessions
        raw: list[tuple[float, np.ndarray, np.ndarray] | None] = [None] * len(encoded)

        def work(rows: Iterable[int], session: Any) -> None:
            for i in rows:
                raw[i] = self.run(encoded[i], session)

        if self._pool is not None and len(encoded) > 1:
            # the longest pair first, each to whichever session is free
            side_by_side(self._pool, sessions, [len(e.ids) for e in encoded], work)
        else:
            work(range(len(encoded)), sessions[0])
        out = []
        for e, got in zip(encoded, raw, strict=True):
            assert got is not None
            span, score = best_span(e, got[1], got[2])
            out.append(CrossOutput(got[0], span, score))
        return out
