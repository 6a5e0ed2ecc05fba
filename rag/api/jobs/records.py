"""What a client sees of an ingest job: its state, progress, counts, skipped files and errors
(the records the manager updates and the shared job table stores)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class PhaseProgress(BaseModel):
    done: int = 0
    total: int = 0


class SkippedFile(BaseModel):
    path: str
    reason: str


class JobError(BaseModel):
    code: str
    message: str
    hint: str = ""


class JobFiles(BaseModel):
    seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0


class JobChunks(BaseModel):
    written: int = 0
    deleted: int = 0
    total: int = Field(0, description="Chunks the index holds after the job.")


class JobStatus(BaseModel):
    """An ingest job as a client sees it."""

    id: str
    state: JobState
    source: Literal["paths", "upload"]
    paths: list[str] = Field(description="What was asked for (relative to the corpus folder).")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    phase: str | None = Field(
        None,
        description="waiting (another process writes the index), read (files) or embed "
        "(chunks).",
    )
    progress: dict[str, PhaseProgress] = Field(default_factory=dict)
    files: JobFiles = Field(default_factory=JobFiles)
    chunks: JobChunks = Field(default_factory=JobChunks)
    skipped: list[SkippedFile] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    errors: list[JobError] = Field(default_factory=list)
    seconds: float | None = None
    index_version: str | None = Field(None, description="The index version after the job.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "5f0c2a9d4b1e4f7a8c3d2e1f0a9b8c7d",
                    "state": "succeeded",
                    "source": "paths",
                    "paths": ["notes"],
                    "created_at": "2026-01-05T10:00:00+00:00",
                    "started_at": "2026-01-05T10:00:00+00:00",
                    "finished_at": "2026-01-05T10:00:03+00:00",
                    "phase": "embed",
                    "progress": {"read": {"done": 3, "total": 3}, "embed": {"done": 9, "total": 9}},
                    "files": {"seen": 3, "indexed": 2, "unchanged": 0, "removed": 0},
                    "chunks": {"written": 9, "deleted": 0, "total": 42},
                    "skipped": [{"path": "notes/photo.png", "reason": "unsupported format (.png)"}],
                    "warnings": ["skipped notes/photo.png: unsupported format (.png)"],
                    "errors": [],
                    "seconds": 2.8,
                    "index_version": "3f9a1c0b2d4e",
                }
            ]
        }
    }
