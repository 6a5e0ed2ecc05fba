"""Multipart uploads whose parts name their file the RFC 5987 way (``filename*=UTF-8''…``).

Starlette reads only ``filename="…"``; a part that carries only ``filename*`` (what some
clients send for a non-ASCII name) was taken for a plain form field, and the upload refused
as "no files".  :func:`plain_filenames` rewrites such a header, as the body streams in, to a
``filename="…"`` holding the decoded name (kept as it is when the part has both).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import unquote

from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartParser

_EXTENDED = re.compile(
    rb"(?im)^(content-disposition:[^\r\n]*?);\s*filename\*\s*=\s*"
    rb"(?P<charset>[a-z0-9_-]*)'[^'\r\n]*'(?P<value>[^;\r\n]*)(?P<rest>[^\r\n]*)(?=\r?$)"
)
HEADER_LINE = 4096  # a Content-Disposition line is never split across longer stretches


def _rewrite(data: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        head, rest = match.group(1), match.group("rest")
        if re.search(rb"(?i);\s*filename\s*=", head + rest):
            return head + rest  # a plain filename is there too: starlette uses that one
        charset = match.group("charset").decode("ascii", "replace") or "utf-8"
        try:
            name = unquote(match.group("value").decode("ascii", "replace"), charset, "replace")
        except LookupError:  # an unknown charset
            name = unquote(match.group("value").decode("ascii", "replace"))
        quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        return head + b'; filename="' + quoted.encode("utf-8") + b'"' + rest

    return _EXTENDED.sub(one, data)


async def plain_filenames(stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The body with every ``filename*=`` part header rewritten (see the module docstring);
    only whole lines are rewritten, so a header split between two chunks is still found."""
    carry = b""
    async for chunk in stream:
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > HEADER_LINE:
            cut = len(data) - HEADER_LINE  # a long run without line ends: file content
        yield _rewrite(data[:cut])
        carry = data[cut:]
    if carry:
        yield _rewrite(carry)


async def read_form(headers: Headers, stream: AsyncIterator[bytes]) -> FormData:
    """The multipart form of a request, ``filename*`` parts counted as files."""
    return await MultiPartParser(headers, plain_filenames(stream)).parse()
