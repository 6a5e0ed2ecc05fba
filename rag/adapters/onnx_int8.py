"""The ``onnx-int8`` embedding backend: a sentence-transformers model exported once to ONNX,
its attention and layer norms fused by onnxruntime's transformer optimizer and its weights
quantized to int8 (per channel, in a 7-bit range so that every x86 CPU computes the same
integers), cached under the models folder; run by onnxruntime and ``tokenizers`` alone (no
torch, transformers or sentence-transformers at run time).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

INT8_RECIPE = "v3"  # bump when the export or quantization changes: the cache key includes it

META_FILE = "embedder.json"  # beside model.onnx: what running it needs without the torch model


def int8_folder(target: str, cache_dir: Path) -> Path:
    """Where the int8 export of ``target`` lives: keyed by the model's files and the recipe."""
    import onnxruntime

    weights = sorted(Path(target).glob("*.safetensors")) + sorted(Path(target).glob("*.bin"))
    stamp = [target, INT8_RECIPE, onnxruntime.__version__]
    stamp += [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights]
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(target).name)
    return cache_dir / "onnx-int8" / f"{slug}-{key}"


class OnnxInt8:
    """The model's transformer as an int8 ONNX graph run by onnxruntime, the tokenizer from
    tokenizer.json, and the sentence-transformers pooling (mean or CLS) and L2 normalisation
    in numpy: no torch at run time."""

    @staticmethod
    def cached(folder: Path) -> bool:
        return all((folder / f).is_file() for f in ("model.onnx", "tokenizer.json", META_FILE))

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        self.dimension = int(meta["dimension"])
        self.max_seq_length = int(meta["max_seq_length"])
        self.special_tokens = int(meta["special_tokens"])
        self.pooling = str(meta["pooling"])
        self._json = (folder / "tokenizer.json").read_text(encoding="utf-8")
        self.tokenizer = Tokenizer.from_str(self._json)
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.no_padding()  # tokenizer.json may ask for a fixed length
        self._path = str(folder / "model.onnx")
        self.session = self._session(threads=0)
        self._single: Any = None  # the one-thread session for single texts, made on first use
        self._sessions: list[Any] | None = None  # one-thread sessions, one per core
        self._pool: Any = None
        self._lock = threading.Lock()
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            # no busy-waiting: the keyword search runs beside a query's embedding
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self._path, options, providers=["CPUExecutionProvider"])

    def encode_one(self, text: str) -> np.ndarray:
        """One short text (a question) on a one-thread session: 2.5 ms either way, and it
        leaves the other core to the keyword search running beside it (100k chunks: search
        p50 24 -> 16 ms).  Same weights, same kernels: bit-identical to :meth:`encode`."""
        vector: np.ndarray = self.encode([text], session=self._single_session())[0]
        return vector

    def plain_tokenizer(self) -> Any:
        """A separate copy for counting tokens (no truncation, no padding)."""
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self._json)

    def encode(
        self,
        texts: list[str],
        spans: Sequence[Sequence[tuple[int, int]]] | None = None,
        parts: list[np.ndarray] | None = None,
        session: Any = None,
    ) -> np.ndarray:
        """One text per run: int8 activations are quantized with one scale per run, so in a
        padded batch a text's vector would depend on its neighbours; alone it does not (the
        same text always gets the same vector, as a question and as a chunk), and no time
        goes to padding (batching gains onnxruntime little here).

        Several texts run on one one-thread session per core at once: ~10% more throughput
        than one session splitting each small run over both cores (138 vs 126 chunks/s on
        2 cores), and the same vectors (one text, one run, whichever session runs it).

        ``spans`` (with ``parts``): character ranges of each text, e.g. its sentences; for
        each text, ``parts`` receives a (ranges x dimension) array of the unit mean of the
        token states inside each range, from the same run (a range's vector in the context of
        its text, at no extra model cost)."""
        import numpy as np

        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        pooled: list[np.ndarray | None] = [None] * len(texts)
        encodings = self.tokenizer.encode_batch(texts)

        def run(rows: Iterable[int], runner: Any) -> None:
            for row in rows:
                hidden = self._hidden(runner, encodings[row])
                vector = hidden[0] if self.pooling == "cls" else hidden.mean(axis=0)
                out[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
                if spans is not None:
                    ranges = spans[row]
                    pooled[row] = _pool_ranges(hidden, encodings[row], ranges, self.dimension)

        if session is not None:
            run(range(len(texts)), session)
        else:
            self._side_by_side(encodings, run, lambda: self.session)
        if spans is not None and parts is not None:
            parts.extend(p if p is not None else np.zeros((0, self.dimension)) for p in pooled)
        return out

    def token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each text, from one run: its vector (exactly as :meth:`encode` gives it), its
        token states (tokens x dimension, special tokens left out) and each of those tokens'
        character range.  One text on the one-thread session; several (a question's new
        candidate sentences) side by side on one one-thread session per core, as
        :meth:`encode` runs them (the same numbers whichever session runs a text)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(texts)

        def run(rows: Iterable[int], runner: Any) -> None:
            for row in rows:
                encoding = encodings[row]
                hidden = self._hidden(runner, encoding)
                vector = hidden[0] if self.pooling == "cls" else hidden.mean(axis=0)
                vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
                real = np.asarray(encoding.special_tokens_mask, dtype=bool) == 0
                offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
                out[row] = (vector.astype(np.float32), hidden[real], offsets[real])

        self._side_by_side(encodings, run, self._single_session)
        return [row for row in out if row is not None]

    def _single_session(self) -> Any:
        if self._single is None:
            self._single = self._session(threads=1)
        return self._single

    def _side_by_side(
        self,
        encodings: Sequence[Any],
        run: Callable[[Iterable[int], Any], None],
        alone: Callable[[], Any],
    ) -> None:
        """``run(rows, session)`` over rows ``0..len(encodings)-1``: several rows shared by
        the one-thread sessions, one per core, side by side, each session taking the longest
        row left when it is free (texts differ in length: a fixed split left one core idle
        while the other ran the long ones); a single row on ``alone()``."""
        count = len(encodings)
        workers = self._workers() if count > 1 else []
        if len(workers) > 1:
            side_by_side(self._pool, workers, [len(e.ids) for e in encodings], run)
        else:
            run(range(count), alone())

    def _hidden(self, session: Any, encoding: Any) -> np.ndarray:
        import numpy as np

        columns = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        feed = {name: np.asarray([columns[name]], dtype=np.int64) for name in self.inputs}
        hidden: np.ndarray = session.run(None, feed)[0][0]
        return hidden

    def _workers(self) -> list[Any]:
        """One one-thread session per core (made on first use), and the threads for them."""
        with self._lock:
            if self._sessions is None:
                count = max(1, os.cpu_count() or 1)
                self._sessions = [self._session(threads=1) for _ in range(count)]
                if count > 1:
                    self._pool = ThreadPoolExecutor(count, thread_name_prefix="rag-embed")
            return self._sessions


def side_by_side(
    pool: ThreadPoolExecutor,
    sessions: Sequence[Any],
    lengths: Sequence[int],
    run: Callable[[Iterable[int], Any], None],
) -> None:
    """``run(rows, session)`` for every session at once on ``pool``, the rows ``0..len(lengths)-1``
    shared between them: the longest row first (equal lengths in row order), each taken by
    whichever session is free."""
    left = deque(sorted(range(len(lengths)), key=lambda row: -lengths[row]))
    jobs = [pool.submit(run, _Taking(left), s) for s in sessions]
    for job in jobs:
        job.result()


class _Taking:
    """Rows taken one at a time from a queue that several threads share (``popleft`` is
    atomic): an iterator each session's thread runs until the queue is empty."""

    def __init__(self, left: deque[int]) -> None:
        self._left = left

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        try:
            return self._left.popleft()
        except IndexError:
            raise StopIteration from None


def _pool_ranges(
    hidden: np.ndarray, encoding: Any, ranges: Sequence[tuple[int, int]], dimension: int
) -> np.ndarray:
    import numpy as np

    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    real = np.asarray(encoding.special_tokens_mask, dtype=bool) == 0
    out = np.zeros((len(ranges), dimension), dtype=np.float32)
    for i, (start, end) in enumerate(ranges):
        inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
        if inside.any():
            v = hidden[inside].mean(axis=0)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def _pooling_mode(model: Any) -> str:
    """The sentence-transformers model's pooling, checked to be one the int8 path does."""
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
        raise ConfigError(
            f"the onnx-int8 embedding backend supports Transformer + Pooling (+ Normalize) "
            f"models, not {' + '.join(names)}",
            "set RAG_EMBEDDING_BACKEND=torch",
        )
    pooling = modules[1]
    mode = str(getattr(pooling, "pooling_mode", "") or "")
    if not mode:  # sentence-transformers before pooling_mode
        if getattr(pooling, "pooling_mode_mean_tokens", False):
            mode = "mean"
        elif getattr(pooling, "pooling_mode_cls_token", False):
            mode = "cls"
    if mode not in ("mean", "cls"):
        raise ConfigError(
            f"the onnx-int8 embedding backend supports mean or CLS pooling, not {mode!r}",
            "set RAG_EMBEDDING_BACKEND=torch",
        )
    return mode


def export_int8(model: Any, target: str, folder: Path) -> None:
    """Export, fuse and quantize ``model`` into ``folder`` (atomically: a whole folder or
    nothing; two processes exporting at once both succeed)."""
    pooling = _pooling_mode(model)
    tokenizer = model.tokenizer
    getter = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    meta = {
        "source": target,
        "recipe": INT8_RECIPE,
        "dimension": int(getter() or 0),
        "max_seq_length": int(model.max_seq_length or 512),
        "special_tokens": len(tokenizer("")["input_ids"]),
        "pooling": pooling,
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
    }
    if folder.exists():  # an incomplete export (interrupted, or an older layout)
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.warning("preparing the int8 embedding model in %s (once, about 15 s)", folder)
    work = Path(tempfile.mkdtemp(prefix=".onnx-int8-", dir=folder.parent))
    try:
        final = work / "final"
        final.mkdir()
        try:
            with _quiet():
                _quantized_onnx(model, target, work, final / "model.onnx")
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"cannot export the embedding model to int8 ONNX: {exc.__class__.__name__}: {exc}",
                "set RAG_EMBEDDING_BACKEND=torch (or check that the onnx package is installed)",
            ) from None
        (final / "tokenizer.json").write_text(tokenizer.backend_tokenizer.to_str(), "utf-8")
        (final / META_FILE).write_text(json.dumps(meta, indent=2), "utf-8")
        try:
            os.replace(final, folder)
        except OSError:  # another process finished the same export first
            if not OnnxInt8.cached(folder):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's and quantizer's advice (warnings, root-logger lines) is for their
    developers, not for someone asking a question."""
    import logging
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _quantized_onnx(model: Any, target: str, work: Path, out: Path) -> None:
    try:
        import onnx  # noqa: F401  (onnxruntime.quantization needs it)
        import onnxruntime.quantization  # noqa: F401  (checked here: fuse_and_quantize uses it)
        import torch
    except ImportError as exc:
        raise ConfigError(
            f"the onnx-int8 embedding backend needs {exc.name} to build its model",
            "pip install onnx (once: the int8 model is cached), or set RAG_EMBEDDING_BACKEND=torch",
        ) from None
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain MatMul/Softmax, which the optimizer fuses into one
    # Attention op (SDPA exports a pattern it does not recognise).
    eager = SentenceTransformer(target, device="cpu", model_kwargs={"attn_implementation": "eager"})
    hf: Any = eager[0].auto_model
    hf.eval()
    config: Any = hf.config
    names = [n for n in model.tokenizer.model_input_names if n != "position_ids"]

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = hf

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    sample = model.tokenizer(
        ["an example sentence", "another, somewhat longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    fp32 = work / "fp32.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(
            Wrapped().eval(),
            tuple(sample[n] for n in names),
            str(fp32),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    fuse_and_quantize(fp32, config, work, out)


def fuse_and_quantize(fp32: Path, config: Any, work: Path, out: Path) -> None:
    """An fp32 ONNX transformer (``config``: its Hugging Face config) as int8 at ``out``: the
    attention fused (BERT) and the weights quantized per channel in 7 bits."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = fp32
    if config.model_type == "bert":
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(fp32),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
        source = work / f"{fp32.stem}-fused.onnx"
        fused.save_model_to_file(str(source))
    # 7-bit weights (reduce_range): on AVX2 CPUs without VNNI, onnxruntime's u8 x s8 kernels
    # add each pair of products in 16 bits with saturation (255 * 127 * 2 > 32767), while VNNI
    # CPUs add them exactly, so 8-bit weights give slightly different vectors per machine.
    # With |w| <= 64 a pair stays within 255 * 64 * 2 = 32640: exact everywhere
    # (tests/adapters/test_int8_exact.py checks every weight and every integer product).
    quantize_dynamic(
        str(source),
        str(out),
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT: fused ops' outputs
    )
