"""What the index holds, per file, written atomically beside the index.

The manifest is the index's table of contents: a file listed here has all its
chunks in Chroma.  It is written last, so an interrupted ingest leaves the
index marked stale, never half-listed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.errors import IndexStateError

MANIFEST_VERSION = 1


@dataclass
class FileEntry:
    path: str
    abs_path: str
    sha256: str
    size: int
    mtime: float
    chunk_ids: list[str]
    ingested_at: str


@dataclass
class Manifest:
    embedding_model: str = ""
    chunker: str = ""
    files: dict[str, FileEntry] = field(default_factory=dict)

    @staticmethod
    def path_in(index_dir: Path) -> Path:
        return index_dir / "manifest.json"

    @classmethod
    def load(cls, index_dir: Path) -> Manifest:
        path = cls.path_in(index_dir)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("version") != MANIFEST_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            files = {k: FileEntry(**v) for k, v in raw["files"].items()}
            return cls(raw["embedding_model"], raw["chunker"], files)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexStateError(
                f"the index manifest {path} is unreadable ({exc})",
                "rebuild the index with `rag ingest --rebuild`",
            ) from None

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": MANIFEST_VERSION,
            "embedding_model": self.embedding_model,
            "chunker": self.chunker,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
        }
        fd, tmp = tempfile.mkstemp(dir=index_dir, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path_in(index_dir))

    @property
    def chunk_count(self) -> int:
        return sum(len(f.chunk_ids) for f in self.files.values())
