"""What every format parser shares: the parsed result, the error a bad file raises, the size
limits, and the suffixes that name a format."""

from __future__ import annotations

import re
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
