"""Decoding text files: UTF-8 (with or without BOM), UTF-16/32 with BOM, else cp1252."""

from __future__ import annotations

import codecs

from rag.indexing.formats.base import FormatError, Parsed

SNIFF_BYTES = 8192
# Longest BOMs first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"),
)


def _replaced(text: str, before: int) -> int:
    return text.count("\ufffd") - before


def decode(data: bytes) -> tuple[str, tuple[str, ...]]:
    """``data`` as text, with warnings about how it was read.

    Raises :class:`FormatError` for binary data (NUL bytes near the start, unless a
    UTF-16/32 byte order mark says they belong to the text).
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            text = body.decode(codec, errors="replace")
            bad = _replaced(text, body.decode(codec, errors="ignore").count("\ufffd"))
            warnings = (f"invalid {name} data replaced ({bad} place(s))",) if bad else ()
            return text, warnings
    if b"\x00" in data[:SNIFF_BYTES]:
        raise FormatError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8"), ()
    except UnicodeDecodeError:
        pass
    # Not UTF-8.  Mostly UTF-8 with a few broken bytes (more bytes in valid multi-byte
    # sequences than invalid bytes), or a legacy 8-bit encoding?
    text = data.decode("utf-8", errors="replace")
    bad = _replaced(text, data.decode("utf-8", errors="ignore").count("\ufffd"))
    good = sum(len(ch.encode("utf-8")) for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if good > bad:
        return text, (f"invalid UTF-8 bytes replaced ({bad} place(s))",)
    text = data.decode("cp1252", errors="replace")  # 0x81 0x8D 0x8F 0x90 0x9D: U+FFFD
    return text, ("not UTF-8; read as Latin-1 (cp1252)",)


def parse_text(data: bytes, max_bytes: int) -> Parsed:
    """A text file (prose, Markdown, reStructuredText, source code): its lines as they are."""
    text, warnings = decode(data)
    return Parsed(text, None, warnings)
