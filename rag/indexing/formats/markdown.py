"""Section headings of Markdown and reStructuredText, as a path per line.

``heading_trail(path, lines)[i]`` is the heading path in effect at line ``i + 1``, e.g.
``"Install > From source"``: chunks carry it as context for their embedding.  Text lines
are never changed; citations stay the file's own lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from rag.indexing.formats.base import MARKDOWN_SUFFIXES, RST_SUFFIXES

SEPARATOR = " > "
MAX_HEADING_CHARS = 200  # one heading's text; longer ones are cut
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}(?:[-+*>]|\d{1,9}[.)])(?:[ \t]|$)")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_HEADING_CHARS]


def markdown_headings(lines: Sequence[str]) -> dict[int, tuple[int, str]]:
    """Line index -> (level, title) of each ATX or setext heading of a Markdown text."""
    found: dict[int, tuple[int, str]] = {}
    fence: str | None = None
    start = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                start = i + 1
                break
    for i in range(start, len(lines)):
        line = lines[i]
        opened = _FENCE.match(line)
        if fence is not None:
            closing = opened.group(1) if opened else ""
            only_fence = not line.strip().lstrip(fence[0])
            if closing[:1] == fence[0] and len(closing) >= len(fence) and only_fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        atx = _ATX.match(line)
        if atx:
            title = _title(atx.group(2) or "")
            if title:
                found[i] = (len(atx.group(1)), title)
            continue
        setext = _SETEXT.match(line)
        if setext and i > start and (i - 1) not in found:
            above = lines[i - 1]
            if (
                above.strip()
                and not above.startswith("    ")
                and not _LIST_OR_QUOTE.match(above)
                and not _FENCE.match(above)
                and not _SETEXT.match(above)
            ):
                found[i - 1] = (1 if setext.group(1)[0] == "=" else 2, _title(above))
    return found


def rst_headings(lines: Sequence[str]) -> dict[int, tuple[int, str]]:
    """Line index -> (level, title) of each section title of a reStructuredText text.

    A title is a line under- (and maybe over-) lined with one punctuation character; levels
    follow the order in which adornment styles first appear, as docutils assigns them.
    """
    styles: list[tuple[str, bool]] = []
    found: dict[int, tuple[int, str]] = {}
    skip_until = -1
    for i, line in enumerate(lines):
        if i <= skip_until or not line.strip():
            continue
        over = _RST_ADORNMENT.match(line)
        if over and i + 2 < len(lines):
            text, under = lines[i + 1], _RST_ADORNMENT.match(lines[i + 2])
            if text.strip() and under and under.group(1) == over.group(1):
                style = (over.group(1), True)
                if style not in styles:
                    styles.append(style)
                found[i] = (styles.index(style) + 1, _title(text))
                skip_until = i + 2
                continue
        if over or line[0].isspace() or i + 1 >= len(lines):
            continue
        under = _RST_ADORNMENT.match(lines[i + 1])
        before = lines[i - 1] if i else ""
        if (
            under
            and len(lines[i + 1].rstrip()) >= min(len(line.rstrip()), 4)
            and (not before.strip() or i - 1 == skip_until)
        ):
            style = (under.group(1), False)
            if style not in styles:
                styles.append(style)
            found[i] = (styles.index(style) + 1, _title(line))
            skip_until = i + 1
    return found


def trail(lines: Sequence[str], headings: dict[int, tuple[int, str]]) -> list[str]:
    """The heading path in effect at each line."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []
    current = ""
    for i in range(len(lines)):
        if i in headings:
            level, title = headings[i]
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            current = SEPARATOR.join(t for _, t in stack)
        out.append(current)
    return out


def heading_trail(path: str, lines: Sequence[str]) -> list[str] | None:
    """Heading path per line for a Markdown or reStructuredText file; None for other files."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return trail(lines, markdown_headings(lines))
    if suffix in RST_SUFFIXES:
        return trail(lines, rst_headings(lines))
    return None
