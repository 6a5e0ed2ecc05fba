"""Rendering answers for people (terminal) and programs (JSON).  Nothing here decides content."""

from __future__ import annotations

import re
from typing import TextIO

from rag.models import Answer

# C0/C1 controls (ESC starts every ANSI sequence) except tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str) -> str:
    """Document text made safe for a terminal: no escape sequences, no control characters."""
    return _CONTROL.sub("\ufffd", text)


def render_text(answer: Answer, out: TextIO, *, color: bool = False) -> None:
    bold = "\x1b[1m" if color else ""
    dim = "\x1b[2m" if color else ""
    cyan = "\x1b[36m" if color else ""
    reset = "\x1b[0m" if color else ""
    body = sanitize(answer.answer)
    for i, c in enumerate(answer.citations, start=1):
        body = body.replace(f"[{i}]", f"{cyan}[{sanitize(c.anchor)}]{reset}")
    out.write(f"{bold}{body}{reset}\n")
    if answer.citations:
        out.write("\n")
    for c in answer.citations:
        out.write(f"{cyan}[{sanitize(c.anchor)}]{reset}\n")
        for offset, line in enumerate(c.quote.split("\n")):
            out.write(f"{dim}  {c.start_line + offset:>5} | {reset}{sanitize(line)}\n")
    out.write(
        f"{dim}\n({answer.backend}, {sanitize(answer.model)}; "
        f"{answer.timings.total_ms:.0f} ms){reset}\n"
    )


def render_json(answer: Answer, out: TextIO) -> None:
    out.write(answer.model_dump_json(indent=2) + "\n")
