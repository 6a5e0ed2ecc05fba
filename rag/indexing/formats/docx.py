"""DOCX: paragraph *i* of the body on line *i*, table cells' paragraphs in document order.

A DOCX is a zip; before python-docx inflates anything the central directory is checked
(member count, declared total size, compression ratio).  Python's zipfile never inflates
a member past its declared size, so declared sizes bound what parsing can allocate.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from rag.indexing.formats.base import FormatError, Parsed, max_inflated

MAX_MEMBERS = 5000
MAX_RATIO = 200  # inflated / compressed size of one member
RATIO_FLOOR = 1 << 20  # members smaller than this inflated are not ratio-checked
MAX_TABLE_DEPTH = 20
_FLATTEN = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def check_zip(data: bytes, max_total: int) -> None:
    """Refuse a zip whose central directory promises too much (a decompression bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise FormatError(f"not a valid DOCX (bad zip: {exc})") from None
    if len(members) > MAX_MEMBERS:
        raise FormatError(f"zip has too many members ({len(members)} > {MAX_MEMBERS})")
    total = sum(m.file_size for m in members)
    if total > max_total:
        raise FormatError(
            f"refused: would inflate to {total / 2**20:,.0f} MiB "
            f"(limit {max_total / 2**20:,.0f} MiB; a decompression bomb?)"
        )
    for m in members:
        if m.file_size >= RATIO_FLOOR and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise FormatError(
                f"refused: member {m.filename!r} has an absurd compression ratio "
                f"({m.file_size / max(m.compress_size, 1):,.0f}:1; a decompression bomb?)"
            )


def _flat(text: str) -> str:
    return _FLATTEN.sub(" ", text).rstrip()


def _table_lines(table: Any, depth: int) -> Iterator[str]:
    if depth > MAX_TABLE_DEPTH:
        raise FormatError("tables nested too deeply")
    seen: set[Any] = set()  # the cells' XML elements (kept alive, compared by identity)
    for row in table.rows:
        for cell in row.cells:
            if cell._tc in seen:  # a merged cell repeats across the columns it spans
                continue
            seen.add(cell._tc)
            for item in cell.iter_inner_content():
                if hasattr(item, "rows"):
                    yield from _table_lines(item, depth + 1)
                else:
                    yield _flat(item.text)


def docx_lines(data: bytes) -> list[str]:
    import docx

    document = docx.Document(io.BytesIO(data))
    lines: list[str] = []
    for item in document.iter_inner_content():
        if hasattr(item, "rows"):
            lines.extend(_table_lines(item, 1))
        else:
            lines.append(_flat(item.text))
    return lines


def parse_docx(data: bytes, max_bytes: int) -> Parsed:
    check_zip(data, max_inflated(max_bytes))
    try:
        lines = docx_lines(data)
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("cannot read DOCX: structure nested too deeply") from None
    except Exception as exc:
        raise FormatError(f"cannot read DOCX: {type(exc).__name__}: {exc}"[:300]) from None
    return Parsed("\n".join(lines) + "\n", None, ())
