"""Recording marks and judging where each stands: the feedback service.

A mark is pinned to content.  When it is recorded, every file it names (cited, chosen,
unsupported) must be a document of the index and every range must lie inside it; the
lines' text and the file's SHA-256 are kept.  When records are read back, each file is
hashed again: one that changed or is gone makes the record *stale* (shown, never exported),
its old lines' text still there for a person to find them again and re-mark.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from rag.adapters.manifest import Manifest
from rag.config import Settings
from rag.errors import DocumentNotFoundError, InputError, LineRangeError
from rag.feedback.records import (
    FeedbackIn,
    FeedbackList,
    FeedbackRecord,
    LineRange,
    MarkedLines,
    Origin,
)
from rag.feedback.store import FeedbackStore
from rag.models import now

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str | None:
    """The file's SHA-256, or None when it is gone or unreadable."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def reader_version() -> str | None:
    """A short hash of the shipped reader model (its description records its checksum)."""
    from rag.answering.reader.model import META_FILE, MODEL_DIR

    try:
        meta = json.loads((MODEL_DIR / META_FILE).read_text(encoding="utf-8"))
        return str(meta["sha256"])[:12]
    except (OSError, ValueError, KeyError):
        return None


class FeedbackService:
    """Marks on answers over one index folder."""

    def __init__(self, settings: Settings, store: FeedbackStore | None = None) -> None:
        self.settings = settings
        self.store = store or FeedbackStore(settings.index_dir)

    @cached_property
    def reader_version(self) -> str | None:
        return reader_version()

    # -- where files are -------------------------------------------------------------
    def _where(self, manifest: Manifest, path: str) -> Path:
        """The file a citation names ``path`` (the index knows where it read it)."""
        entry = manifest.files.get(path)
        if entry is not None:
            return Path(entry.abs_path)
        corpus = self.settings.corpus_dir.resolve()
        candidate = (corpus / path).resolve()
        return candidate if candidate.is_relative_to(corpus) else corpus / "\0"

    def _lines(self, file: Path) -> list[str]:
        """The file's lines as citations number them (its text as ingest extracts it)."""
        from rag.indexing.formats import FormatError, parse

        try:
            text = parse(file.suffix.lower(), file.read_bytes(), self.settings.max_file_bytes).text
        except (OSError, FormatError) as exc:
            raise InputError(f"cannot read {file.name}: {exc}") from None
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        return [line[:-1] if line.endswith("\r") else line for line in lines]

    # -- recording ---------------------------------------------------------------------
    def record(self, body: FeedbackIn, origin: Origin | None = None) -> FeedbackRecord:
        """Store ``body`` (a new record, or ``body.id`` marked again); returns it, judged.
        ``origin`` (default: the body's) says where it was marked."""
        manifest = Manifest.load(self.settings.index_dir)
        files: dict[str, str | None] = {}
        texts: dict[str, list[str]] = {}

        def pinned(
            ranges: Iterable[LineRange], field: str, strict: bool = True
        ) -> list[MarkedLines]:
            out = []
            for i, r in enumerate(ranges):
                if r.path not in manifest.files:
                    if not strict and isinstance(r, MarkedLines):
                        out.append(r)  # a cited file since removed: the old text stays
                        continue
                    raise DocumentNotFoundError(
                        f"{field}[{i}].path: {r.path!r} is not a document of the index",
                        "name documents as citations do (GET /v1/documents lists them)",
                    )
                if r.problem():
                    raise LineRangeError(f"{field}[{i}]: {r.anchor}: {r.problem()}")
                if r.path not in texts:
                    where = self._where(manifest, r.path)
                    texts[r.path] = self._lines(where)
                    files[r.path] = file_sha256(where)
                lines = texts[r.path]
                if r.end_line > len(lines):
                    if not strict and isinstance(r, MarkedLines):
                        out.append(r)
                        continue
                    raise LineRangeError(
                        f"{field}[{i}]: {r.anchor} is past the end of {r.path} "
                        f"({len(lines)} lines)",
                        "give lines inside the document",
                    )
                text = lines[r.start_line - 1 : r.end_line]
                out.append(
                    MarkedLines(
                        path=r.path, start_line=r.start_line, end_line=r.end_line, text=text
                    )
                )
            return out

        before = self.store.get(body.id) if body.id is not None else None
        chosen = pinned(body.lines, "lines")
        unsupported = pinned(body.unsupported, "unsupported")
        stamp = now()
        fields = {
            "mark": body.mark,
            "lines": chosen,
            "unsupported": unsupported,
            "expected": (body.expected or "").strip() or None,
            "updated_at": stamp,
        }
        if before is not None:  # marked again: its citations are read (and pinned) anew
            citations = pinned(before.citations, "citations", strict=False)
            update = {**fields, "citations": citations, "files": files}
            return self.judge(self.store.replace(before.model_copy(update=update)))
        citations = pinned(body.citations, "citations")
        record = FeedbackRecord(
            id=0,
            created_at=stamp,
            origin=origin or body.origin,
            question=body.question.strip(),
            query=(body.query or "").strip() or None,
            answer=body.answer,
            abstained=body.abstained,
            citations=citations,
            backend=body.backend,
            model=body.model,
            reader_version=self.reader_version,
            index_version=body.index_version or manifest.version(),
            files=files,
            **fields,
        )
        return self.judge(self.store.add(record))

    # -- reading back --------------------------------------------------------------------
    def judge(self, record: FeedbackRecord, manifest: Manifest | None = None) -> FeedbackRecord:
        """``record`` with its state now: stale when a file it names changed or is gone;
        "needs lines" when a wrong answer has no right lines yet."""
        manifest = manifest if manifest is not None else Manifest.load(self.settings.index_dir)
        problems = []
        for path in sorted(_named(record)):
            then = record.files.get(path)
            current = file_sha256(self._where(manifest, path))
            if current is None:
                problems.append(f"{path} is gone")
            elif current != then:
                problems.append(f"{path} changed since it was marked")
        if problems:
            return record.model_copy(update={"state": "stale", "problems": problems})
        need = _needs_lines(record)
        if need:
            return record.model_copy(update={"state": "needs lines", "problems": [need]})
        return record.model_copy(update={"state": "ready", "problems": []})

    def records(self, limit: int | None = None) -> list[FeedbackRecord]:
        """Every record (newest first, at most ``limit``), each judged now."""
        found = self.store.all(limit)
        if not found:
            return []
        manifest = Manifest.load(self.settings.index_dir)
        return [self.judge(r, manifest) for r in found]

    def listing(self, limit: int | None = None) -> FeedbackList:
        found = self.records(limit)
        return FeedbackList(
            count=len(found),
            ready=sum(r.state == "ready" for r in found),
            stale=sum(r.state == "stale" for r in found),
            feedback=found,
        )

    def close(self) -> None:
        self.store.close()


def _needs_lines(record: FeedbackRecord) -> str:
    """Why ``record`` cannot become a golden row without lines chosen ("" if it can)."""
    if record.lines or record.mark == "unanswerable":
        return ""
    if record.mark == "wrong":
        if record.abstained:
            return "an answer was there: choose the lines that hold it"
        return "a wrong answer needs the right lines (or mark it unanswerable)"
    if record.abstained:  # "right" to abstain: the documents do not say
        return ""
    doubted = {(u.path, u.start_line, u.end_line) for u in record.unsupported}
    if all((c.path, c.start_line, c.end_line) in doubted for c in record.citations):
        return "no cited line is left to support it: choose the right lines"
    return ""


def _named(record: FeedbackRecord) -> set[str]:
    """The files a record's lines name (those whose change makes it stale)."""
    return {r.path for r in (*record.citations, *record.lines, *record.unsupported)}
