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

import re
from collections.abc import Callable
from dataclasses import dataclass

# Decompressed text allowed per input byte (DOCX members, PDF extraction).
INFLATE_FACTOR = 20
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
RST_SUFFIXES = frozenset({".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
_SURROGATE = re.compile("[\ud800-\udfff]")


class FormatError(Exception):
    """The file cannot be read as its format says; ``str(exc)`` is the reason shown."""


@dataclass(frozen=True)
class Parsed:
    text: str
    pages: tuple[int, ...] | None = None  # global 1-based line where each page starts
    warnings: tuple[str, ...] = ()


def max_inflated(max_bytes: int) -> int:
    """How much text (or decompressed bytes) a file of at most ``max_bytes`` may yield."""
    return INFLATE_FACTOR * max_bytes


def clean(text: str) -> str:
    """Text any UTF-8 store accepts: lone surrogates and NULs become U+FFFD (same length)."""
    text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "\ufffd")


def parse(suffix: str, data: bytes, max_bytes: int) -> Parsed:
    """The text of a file with this (lower-case) suffix and content."""
    parser = _parser(suffix)
    parsed = parser(data, max_bytes)
    return Parsed(clean(parsed.text), parsed.pages, parsed.warnings)


def _parser(suffix: str) -> Callable[[bytes, int], Parsed]:
    if suffix == ".pdf":
        from rag.services.formats.pdf import parse_pdf

        return parse_pdf
    if suffix == ".docx":
        from rag.services.formats.docx import parse_docx

        return parse_docx
    if suffix in HTML_SUFFIXES:
        from rag.services.formats.html import parse_html

        return parse_html
    from rag.services.formats.text import parse_text

    return parse_text
