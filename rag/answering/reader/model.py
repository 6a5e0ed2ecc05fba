"""The shipped reader model: five small networks in one ``.npz`` (first-pass ranking of every
retrieved sentence, the joint reader of question and candidate token states, the reader of
the refined candidates, the line chooser, answerability),
described by a JSON file holding its version, its feature names, its abstention threshold
and the SHA-256 of the ``.npz``.  Both are checked at load: a file that does not match is an
error that says to run ``make train``, never silently different scores."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader.features import LINE_FEATURES, QUESTION_FEATURES, SENTENCE_FEATURES
from rag.answering.reader.joint import JointNet
from rag.answering.reader.net import Net
from rag.errors import ReaderModelError

FORMAT = "rag-reader/2"
MODEL_DIR = Path(__file__).parent
WEIGHTS_FILE = "reader.npz"
META_FILE = "reader.json"
NETS = ("rank", "reader", "lines", "answerable")
HINT = "run `make train` (or `rag train`) to rebuild the reader model"


def feature_names() -> dict[str, list[str]]:
    """The features each network reads, as this code computes them."""
    return {
        "rank": list(SENTENCE_FEATURES[: SENTENCE_FEATURES.index("cos_own")]),
        "reader": list(SENTENCE_FEATURES),
        "lines": list(LINE_FEATURES),
        "answerable": list(QUESTION_FEATURES),
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ReaderModel:
    nets: dict[str, Net]
    joint: JointNet
    threshold: float  # abstain below this answerability (chosen on training data)
    meta: dict[str, Any]

    def score(self, net: str, rows: np.ndarray | list[list[float]]) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float64)
        if x.size == 0:
            return np.zeros(0)
        return self.nets[net].score(x.reshape(len(x), -1))

    def answerable(self, row: list[float]) -> float:
        """Probability that the retrieved text answers the question."""
        z = float(self.score("answerable", [row])[0])
        return 1.0 / (1.0 + float(np.exp(-z)))

    def save(self, folder: Path, card: dict[str, Any]) -> None:
        """Write the weights and their description (with the checksum)."""
        arrays: dict[str, np.ndarray] = {}
        for name in NETS:
            arrays.update(self.nets[name].arrays(name))
        arrays.update(self.joint.arrays("joint"))
        buffer = io.BytesIO()
        stored = {k: np.asarray(v, dtype=np.float32) for k, v in sorted(arrays.items())}
        np.savez(buffer, **stored)  # type: ignore[arg-type]
        data = buffer.getvalue()
        (folder / WEIGHTS_FILE).write_bytes(data)
        meta = {
            "format": FORMAT,
            "features": feature_names(),
            "threshold": self.threshold,
            "sha256": sha256(data),
            **card,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


_cache: dict[Path, ReaderModel] = {}
_lock = threading.Lock()


def load_model(folder: Path = MODEL_DIR) -> ReaderModel:
    """The reader model in ``folder``, checked (cached: loaded once per process)."""
    with _lock:
        if folder not in _cache:
            _cache[folder] = _load(folder)
        return _cache[folder]


def _load(folder: Path) -> ReaderModel:
    weights, described = folder / WEIGHTS_FILE, folder / META_FILE
    if not weights.is_file() or not described.is_file():
        raise ReaderModelError(f"the reader model is missing in {folder}", HINT)
    try:
        meta = json.loads(described.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReaderModelError(f"cannot read {described}: {exc}", HINT) from None
    if meta.get("format") != FORMAT:
        raise ReaderModelError(
            f"the reader model {described} has format {meta.get('format')!r}; "
            f"this version of rag reads {FORMAT!r}",
            HINT,
        )
    if meta.get("features") != feature_names():
        raise ReaderModelError(
            f"the reader model {described} was trained on other features than this code computes",
            HINT,
        )
    data = weights.read_bytes()
    if sha256(data) != meta.get("sha256"):
        raise ReaderModelError(
            f"the reader model {weights} does not match its checksum in {described} "
            "(altered or from another training run)",
            HINT,
        )
    with np.load(io.BytesIO(data)) as arrays:
        loaded = {k: arrays[k] for k in arrays.files}
    nets = {name: Net.from_arrays(loaded, name) for name in NETS}
    return ReaderModel(nets, JointNet.from_arrays(loaded, "joint"), float(meta["threshold"]), meta)
