"""A document's numbered lines around a range: what the web page shows beside a citation.

The lines are the document's text as ingest reads it (``rag.indexing.loader``), so their
numbers are the ones citations use: a text file's own lines, an HTML file's visible text on
its source lines, a PDF's extracted lines (each also with its page and its line on that
page).  Only documents inside the allowed roots are read, by the rules every path the API
takes follows (``rag.api.paths``): a document is named as citations name it, relative to
the corpus folder; no ``..``, no absolute path, and its real path (links resolved) must lie
inside an allowed root.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from pathlib import Path

from pydantic import BaseModel, Field

from rag.adapters.manifest import Manifest
from rag.api.paths import PathNotAllowedError, PathNotFoundError, PathPolicy, check_text
from rag.errors import InputError
from rag.indexing.chunker import split_lines
from rag.indexing.loader import Document, SourceFile, read

MAX_RADIUS = 200  # lines of context on each side
MAX_SPAN = 2000  # lines one range may ask for (before the context)
CACHED_DOCUMENTS = 8  # read documents kept (a PDF is extracted once, not at every citation)


class LineRangeError(InputError):
    code = "bad_line_range"


class Line(BaseModel):
    number: int = Field(description="1-based, as citations count (start_line, end_line).")
    text: str
    page: int | None = Field(None, description="Page of a paged document (PDF), 1-based.")
    page_line: int | None = Field(None, description="The line's number within its page.")


class DocumentLines(BaseModel):
    path: str
    start: int = Field(description="First line of the range asked for.")
    end: int = Field(description="Last line of the range (at most the document's last line).")
    total: int = Field(description="Lines in the document.")
    pages: int | None = Field(None, description="Pages of a paged document (PDF).")
    indexed: bool = Field(description="The index holds this document.")
    changed: bool = Field(
        description="The file differs from the version the index holds: citations may point "
        "at other lines now (re-ingest it)."
    )
    lines: list[Line] = Field(description="The range with `radius` lines of context around it.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "path": "004_5e50463e41e8a191.txt",
                    "start": 14,
                    "end": 14,
                    "total": 31,
                    "pages": None,
                    "indexed": True,
                    "changed": False,
                    "lines": [
                        {"number": 13, "text": "", "page": None, "page_line": None},
                        {
                            "number": 14,
                            "text": "Putin’s last visit to North Korea was in July 2000.",
                            "page": None,
                            "page_line": None,
                        },
                    ],
                }
            ]
        }
    }


def locate(policy: PathPolicy, manifest: Manifest, path: str) -> Path:
    """The real path of the document citations call ``path``, if it may be read."""
    check_text(path, "document path")
    if path.startswith(("/", "\\")) or Path(path).is_absolute():
        raise PathNotAllowedError(
            f"{path[:200]!r} is not a document name",
            "name the document as citations and GET /v1/documents do (relative to the corpus)",
        )
    entry = manifest.files.get(path)
    given = Path(entry.abs_path) if entry is not None else policy.corpus / path
    real = Path(os.path.realpath(given))
    if not policy.inside(real):  # before looking whether it exists: no existence oracle
        raise PathNotAllowedError(
            f"{path[:200]!r} is outside the folders this server may read",
            "only documents inside the corpus folder (or RAG_ALLOWED_ROOTS) are shown",
        )
    if not real.is_file():
        raise PathNotFoundError(
            f"no such document: {path[:200]}",
            "GET /v1/documents lists the documents the index holds",
        )
    return real


class _Recent:
    """The last few documents read, keyed by real path, size and modification time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._docs: OrderedDict[tuple[Path, int, int], tuple[Document, list[str]]] = OrderedDict()

    def get(self, real: Path, path: str, max_bytes: int) -> tuple[Document, list[str]]:
        stat = real.stat()
        key = (real, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._docs:
                self._docs.move_to_end(key)
                return self._docs[key]
        got = read(SourceFile(abs_path=real, rel_path=path), max_bytes)
        if not isinstance(got, Document):
            raise InputError(f"cannot show {path[:200]}: {got.reason}", "only readable documents")
        entry = (got, [line.text for line in split_lines(got.text)])
        with self._lock:
            self._docs[key] = entry
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)
        return entry


_recent = _Recent(CACHED_DOCUMENTS)


def check_range(start: int, end: int | None, total: int) -> int:
    """The range's last line (``end``, at most the document's last); a clear error if bad."""
    end = start if end is None else end
    if end < start:
        raise LineRangeError(
            f"the range ends (line {end}) before it starts (line {start})",
            "send start <= end",
        )
    if end - start + 1 > MAX_SPAN:
        raise LineRangeError(
            f"the range holds {end - start + 1} lines (limit {MAX_SPAN})",
            "ask for a shorter range",
        )
    if start > total:
        raise LineRangeError(
            f"line {start} is past the end of the document ({total} lines)",
            "the file may have changed since it was indexed: re-ingest it",
        )
    return min(end, total)


def document_lines(
    policy: PathPolicy,
    manifest: Manifest,
    path: str,
    start: int,
    end: int | None = None,
    radius: int = 0,
    max_bytes: int = 20 * 2**20,
) -> DocumentLines:
    """Lines ``start..end`` of document ``path`` with ``radius`` lines around them."""
    real = locate(policy, manifest, path)
    doc, lines = _recent.get(real, path, max_bytes)
    last = check_range(start, end, len(lines))
    first_shown = max(1, start - radius)
    last_shown = min(len(lines), last + radius)
    pages = doc.pages
    shown: list[Line] = []
    for number in range(first_shown, last_shown + 1):
        page = page_line = None
        if pages:
            index = bisect.bisect_right(pages, number) - 1
            if index >= 0:
                page, page_line = index + 1, number - pages[index] + 1
        shown.append(Line(number=number, text=lines[number - 1], page=page, page_line=page_line))
    entry = manifest.files.get(path)
    return DocumentLines(
        path=path,
        start=start,
        end=last,
        total=len(lines),
        pages=len(pages) if pages else None,
        indexed=entry is not None,
        changed=entry is not None and entry.sha256 != doc.sha256,
        lines=shown,
    )
