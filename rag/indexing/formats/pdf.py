"""PDF: each page's extracted text, pages one after another, with where each page starts.

Citations name a page and a line of that page's extracted text (``file.pdf:p3:L12``).
Every page has at least one line, so page starts strictly increase.  Hostile files:
every pypdf failure is a skip, encrypted files are skipped, pages and extracted
characters are capped (pypdf itself caps how far one stream may inflate).
"""

from __future__ import annotations

import io
import logging
import re

from rag.indexing.formats.base import FormatError, Parsed, max_inflated

MAX_PAGES = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


def _page_lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_CONTROL.sub(" ", line).rstrip() for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines or [""]


def parse_pdf(data: bytes, max_bytes: int, max_pages: int = MAX_PAGES) -> Parsed:
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - a dependency
        raise FormatError("PDF support needs pypdf (pip install pypdf)") from None
    noisy = logging.getLogger("pypdf")
    level = noisy.level
    noisy.setLevel(logging.ERROR)  # malformed-but-readable files warn a lot
    try:
        return _extract(PdfReader, data, max_bytes, max_pages)
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("cannot read PDF: structure nested too deeply") from None
    except Exception as exc:
        raise FormatError(f"cannot read PDF: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        noisy.setLevel(level)


def _extract(reader_type: type, data: bytes, max_bytes: int, max_pages: int) -> Parsed:
    reader = reader_type(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        raise FormatError("encrypted PDF (cannot read its text)")
    n_pages = len(reader.pages)
    if n_pages > max_pages:
        raise FormatError(f"too many pages ({n_pages} > {max_pages})")
    budget = max_inflated(max_bytes)
    lines: list[str] = []
    starts: list[int] = []
    warnings: list[str] = []
    used = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except RecursionError:
            text = ""
            warnings.append(f"page {number}: text not extracted (nested too deeply)")
        except Exception as exc:
            text = ""
            warnings.append(f"page {number}: text not extracted ({type(exc).__name__})")
        used += len(text)
        if used > budget:
            raise FormatError(
                f"too much text extracted (over {budget:,} characters by page {number})"
            )
        starts.append(len(lines) + 1)
        lines.extend(_page_lines(text))
    if not any(line.strip() for line in lines):
        raise FormatError("no extractable text (a scanned PDF? rag does no OCR)")
    return Parsed("\n".join(lines) + "\n", tuple(starts), tuple(warnings))
