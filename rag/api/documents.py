"""The documents the index holds: listing, deleting one, and the index's version."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from rag.adapters.manifest import Manifest
from rag.api.jobs.manager import JobManager
from rag.api.paths import PathPolicy, check_text
from rag.config import Settings
from rag.errors import DocumentNotFoundError
from rag.indexing.ingest import IngestService

DELETE_WAIT = 30.0  # seconds a deletion waits for a running ingest job


class DocumentInfo(BaseModel):
    path: str = Field(description="The name citations use (relative to the corpus folder).")
    size: int = Field(description="Bytes.")
    sha256: str
    chunks: int
    ingested_at: str
    uploaded: bool = Field(False, description="Stored by an upload (POST /v1/ingest).")


class DeletedDocument(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "path": "uploads/notes.txt",
                    "chunks_deleted": 4,
                    "file_removed": True,
                    "index_version": "7be1d2c90a4f",
                }
            ]
        }
    }

    path: str
    chunks_deleted: int
    file_removed: bool = Field(
        description="The uploaded copy was deleted too (files not uploaded are never touched)."
    )
    index_version: str


def version_of(manifest: Manifest) -> str:
    """A short hash of what the index holds: each document's content and the index's build."""
    return manifest.version()


class DocumentService:
    def __init__(
        self,
        settings: Settings,
        ingest_service: Callable[[], IngestService],
        jobs: JobManager,
        policy: PathPolicy,
    ) -> None:
        self.settings = settings
        self._ingest_service = ingest_service
        self.jobs = jobs
        self.policy = policy
        self._cache_lock = threading.Lock()
        self._cache: tuple[object, Manifest] | None = None
        self._version: tuple[Manifest, str] | None = None  # version_of() the cached manifest

    def manifest(self) -> Manifest:
        """The manifest, re-read only when its file changed."""
        key = Manifest.stamp(self.settings.index_dir)
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        manifest = Manifest.load(self.settings.index_dir)
        with self._cache_lock:
            self._cache = (key, manifest)
        return manifest

    def index_version(self) -> str:
        """Hashed once per manifest read (every search reports it; ~1 ms at 2k files)."""
        manifest = self.manifest()
        known = self._version
        if known is not None and known[0] is manifest:
            return known[1]
        version = version_of(manifest)
        self._version = (manifest, version)
        return version

    def state(self) -> tuple[str, int]:
        manifest = self.manifest()
        return self.index_version(), manifest.chunk_count

    def _uploaded(self, abs_path: str) -> bool:
        real = Path(os.path.realpath(abs_path))
        return real.is_relative_to(Path(os.path.realpath(self.policy.upload_dir)))

    def documents(self, prefixes: Sequence[str] | None = None) -> list[DocumentInfo]:
        """What the index lists, optionally only paths starting with one of ``prefixes``."""
        return [
            DocumentInfo(
                path=entry.path,
                size=entry.size,
                sha256=entry.sha256,
                chunks=len(entry.chunk_ids),
                ingested_at=entry.ingested_at,
                uploaded=self._uploaded(entry.abs_path),
            )
            for name, entry in sorted(self.manifest().files.items())
            if not prefixes or name.startswith(tuple(prefixes))
        ]

    def delete(self, path: str, wait: float = DELETE_WAIT) -> DeletedDocument:
        """Remove ``path`` and its chunks; an uploaded copy is deleted from disk too."""
        check_text(path, "document path")
        if path not in self.manifest().files:
            raise self._unknown(path)
        with self.jobs.writing(wait, across_processes=True):
            entry = self._ingest_service().delete_document(path)
            if entry is None:
                raise self._unknown(path)
            removed = False
            if self._uploaded(entry.abs_path):
                Path(entry.abs_path).unlink(missing_ok=True)
                removed = True
        return DeletedDocument(
            path=path,
            chunks_deleted=len(entry.chunk_ids),
            file_removed=removed,
            index_version=self.index_version(),
        )

    @staticmethod
    def _unknown(path: str) -> DocumentNotFoundError:
        shown = json.dumps(path[:200])
        return DocumentNotFoundError(
            f"the index holds no document {shown}", "GET /v1/documents lists what it holds"
        )
