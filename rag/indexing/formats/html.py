"""HTML: the visible text, each piece on the line of the source file it came from.

The result has exactly as many lines as the source, so a citation's line numbers are
the HTML file's own; lines holding only markup (or hidden text) are blank.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from rag.indexing.formats.base import FormatError, Parsed
from rag.indexing.formats.text import decode

HIDDEN = frozenset({"script", "style", "head", "title", "template", "noembed", "noframes"})
# Tags that do not separate words: text either side joins without a space.
INLINE = frozenset(
    "a abbr b bdi bdo cite code data del dfn em font i ins kbd mark q s samp small span "
    "strike strong sub sup time tt u var wbr".split()
)
_SPACES = re.compile(r"[ \t\f\v\r\u00a0]+")
_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


class _Visible(HTMLParser):
    def __init__(self, n_lines: int) -> None:
        super().__init__(convert_charrefs=False)
        self.lines: list[list[str]] = [[] for _ in range(n_lines)]
        self.hidden: dict[str, int] = {}

    def _put(self, text: str) -> None:
        """``text`` (no line breaks) at the current source position."""
        if any(self.hidden.values()):
            return
        line = self.getpos()[0] - 1
        if 0 <= line < len(self.lines):
            self.lines[line].append(text)

    def _separate(self) -> None:
        if not any(self.hidden.values()):
            line = self.getpos()[0] - 1
            if 0 <= line < len(self.lines):
                self.lines[line].append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden.pop("head", None)  # an unclosed <head> ends where the body starts
        if tag in HIDDEN:
            self.hidden[tag] = self.hidden.get(tag, 0) + 1
        elif tag not in INLINE:
            self._separate()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in INLINE and tag not in HIDDEN:
            self._separate()

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            if self.hidden.get(tag):
                self.hidden[tag] -= 1
        elif tag not in INLINE:
            self._separate()

    def handle_data(self, data: str) -> None:
        if any(self.hidden.values()):
            return
        first = self.getpos()[0] - 1
        for offset, piece in enumerate(data.split("\n")):
            line = first + offset
            if piece and 0 <= line < len(self.lines):
                self.lines[line].append(_LINE_BREAKS.sub(" ", piece))

    def handle_entityref(self, name: str) -> None:
        self._put(_LINE_BREAKS.sub(" ", html.unescape(f"&{name};")))

    def handle_charref(self, name: str) -> None:
        self._put(_LINE_BREAKS.sub(" ", html.unescape(f"&#{name};")))


def line_count(text: str) -> int:
    """Lines as the chunker numbers them (``\\n`` ends a line; no line after a final one)."""
    n = text.count("\n") + 1
    return n - 1 if text.endswith("\n") else n


def visible_text(source: str) -> str:
    """The visible text of ``source``, line for line."""
    n_lines = line_count(source)
    parser = _Visible(n_lines)
    try:
        parser.feed(source)
        parser.close()
    except Exception as exc:  # the stdlib parser is lenient; be safe anyway
        raise FormatError(f"cannot parse HTML: {exc}") from None
    out = [_SPACES.sub(" ", "".join(pieces)).strip() for pieces in parser.lines]
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def parse_html(data: bytes, max_bytes: int) -> Parsed:
    text, warnings = decode(data)
    return Parsed(visible_text(text), None, warnings)
