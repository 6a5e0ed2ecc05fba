"""A citation in its file: the lines around it, read from the file the index was built from."""

from __future__ import annotations

from pathlib import Path

from rag.adapters.manifest import Manifest
from rag.config import Settings
from rag.models import Citation

CONTEXT_LINES = 3  # shown before and after the cited lines


def source_file(settings: Settings, path: str) -> Path | None:
    """Where the file cited as ``path`` lives (the manifest knows), or None if unknown."""
    entry = Manifest.load(settings.index_dir).files.get(path)
    if entry is not None:
        return Path(entry.abs_path)
    corpus = settings.corpus_dir.resolve()
    candidate = (corpus / path).resolve()
    return candidate if candidate.is_relative_to(corpus) else None


def file_lines(path: Path, max_bytes: int = 64 * 2**20) -> list[str]:
    """The file's lines as rag numbers them (its text as ingest extracts it, per format):
    only \\n ends a line, a \\r before it is dropped."""
    from rag.indexing.formats import FormatError, parse

    try:
        text = parse(path.suffix.lower(), path.read_bytes(), max_bytes).text
    except FormatError as exc:
        raise ValueError(str(exc)) from None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_context(
    settings: Settings, citation: Citation, radius: int = CONTEXT_LINES
) -> tuple[int, list[str], str]:
    """(first line number, lines, note): the cited lines with ``radius`` lines either side.

    If the file is gone, unreadable or no longer holds the quoted text at those lines, the
    indexed quote is shown instead, with a note saying why.
    """
    quoted = citation.quote.split("\n")
    path = source_file(settings, citation.path)
    if path is None:
        return citation.start_line, quoted, "the file is not under the corpus folder"
    try:
        lines = file_lines(path)
    except FileNotFoundError:
        return citation.start_line, quoted, f"{path} no longer exists; showing the indexed lines"
    except (OSError, ValueError) as exc:
        return citation.start_line, quoted, f"cannot read {path} ({exc}); showing the indexed lines"
    now = "\n".join(lines[citation.start_line - 1 : citation.end_line])
    if citation.quote not in now:
        return (
            citation.start_line,
            quoted,
            "the file has changed since it was indexed (run `rag ingest`); "
            "showing the indexed lines",
        )
    first = max(1, citation.start_line - radius)
    last = min(len(lines), citation.end_line + radius)
    return first, lines[first - 1 : last], ""
