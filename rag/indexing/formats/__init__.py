"""Per-format text extraction: bytes of one file -> text whose lines citations name.

Every format keeps a line model citations can point at:

* text, source code, Markdown, reStructuredText: the file's own lines;
* HTML: the visible text, each piece on the line of the source file it came from;
* DOCX: paragraph *i* of the body on line *i* (table cells' paragraphs in document order);
* PDF: each page's extracted lines, pages one after another; ``pages`` says where each
  page starts, so a citation reads ``file.pdf:p3:L12``.

A bad file raises :class:`FormatError` (the loader turns it into a skip), never anything else.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.indexing.formats.base import HTML_SUFFIXES, FormatError, Parsed, clean

__all__ = ["FormatError", "Parsed", "parse"]


def parse(suffix: str, data: bytes, max_bytes: int) -> Parsed:
    """The text of a file with this (lower-case) suffix and content."""
    parser = _parser(suffix)
    parsed = parser(data, max_bytes)
    return Parsed(clean(parsed.text), parsed.pages, parsed.warnings)


def _parser(suffix: str) -> Callable[[bytes, int], Parsed]:
    if suffix == ".pdf":
        from rag.indexing.formats.pdf import parse_pdf

        return parse_pdf
    if suffix == ".docx":
        from rag.indexing.formats.docx import parse_docx

        return parse_docx
    if suffix in HTML_SUFFIXES:
        from rag.indexing.formats.html import parse_html

        return parse_html
    from rag.indexing.formats.text import parse_text

    return parse_text
