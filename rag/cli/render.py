"""Rendering answers for people (terminal) and programs (JSON).  Nothing here decides content.

Every string that comes from a document, a model or the index (answers, quotes, sources, file
lines, paths, model names, error messages) passes through :func:`sanitize` before it is put into
a :class:`rich.text.Text`; styling is added by rich afterwards, so a file cannot move the cursor,
change colours or set the window title.  Plain output (pipes, ``NO_COLOR``) is the same text
without styles.  Quoted file lines are shown with marker lookalikes neutralised
(``[secret.txt:L1]`` in a document becomes ``(secret.txt:L1)``): only rag's own markers look
like citations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from rag.answering.citations import neutralize
from rag.errors import LLMError, RagError
from rag.models import Answer, Citation
from rag.text import content_words

# Whole escape sequences first (so "ESC [ 2 J" leaves one mark, not "[2J"), then any other
# C0/C1 control character except tab and newline.
_ESCAPE = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]?                 # CSI: colours, cursor movement, erase
    | \x1b\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?   # OSC: window title, hyperlinks
    | \x1b[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?      # DCS, SOS, PM, APC strings
    | \x1b[\x20-/]*[0-~]?                         # any other ESC sequence (or a lone ESC)
    | \x9b[0-?]*[\x20-/]*[@-~]?                   # 8-bit CSI
    | [\x90\x98\x9d-\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x9c)?  # 8-bit string sequences
    """,
    re.X,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1_OR_DEL = re.compile(r"[\x7f-\x9f]")
_MARKER = re.compile(r"\[(\d{1,3})\]")
_WORD = re.compile(r"[\w][\w'’.-]*\w|\w", re.UNICODE)
REPLACEMENT = "\ufffd"

STYLE = {
    "answer": "bold",
    "short": "bold green",
    "abstained": "yellow",
    "marker": "cyan",
    "anchor": "cyan",
    "gutter": "dim",
    "cited": "bold yellow",
    "cited_line": "",
    "note": "dim italic",
    "footer": "dim",
    "error": "bold red",
    "hint": "",
    "score": "green",
    "info": "dim",
}


def sanitize(text: str) -> str:
    """Document text made safe for a terminal: no escape sequences, no control characters."""
    text = text.replace("\r\n", "\n")
    return _CONTROL.sub(REPLACEMENT, _ESCAPE.sub(REPLACEMENT, text))


def make_console(out: TextIO, *, color: bool, terminal: bool | None = None) -> Console:
    """A rich console that never wraps, never interprets markup, and colours only if asked."""
    return Console(
        file=out,
        force_terminal=color if terminal is None else terminal,
        color_system="standard" if color else None,
        no_color=not color,
        soft_wrap=True,
        highlight=False,
        markup=False,
        emoji=False,
    )


# -- answers ------------------------------------------------------------------
def claims_by_citation(answer: Answer) -> dict[int, list[str]]:
    """For each citation number, the sentences of the answer that cite it."""
    claims: dict[int, list[str]] = {}
    start = 0
    for run in re.finditer(r"(?:\s*\[\d{1,3}\])+", answer.answer):
        text = answer.answer[start : run.start()].strip()
        start = run.end()
        for n in _MARKER.findall(run.group()):
            claims.setdefault(int(n), []).append(text)
    return claims


def cited_spans(quote: str, claims: Iterable[str]) -> list[tuple[int, int]]:
    """Where in ``quote`` the cited words are: the claim verbatim, else its content words."""
    spans: list[tuple[int, int]] = []
    for claim in claims:
        claim = sanitize(claim).strip().rstrip(".")
        if not claim:
            continue
        at = quote.find(claim)
        if at >= 0:
            spans.append((at, at + len(claim)))
            continue
        wanted = content_words(claim)
        spans.extend(m.span() for m in _WORD.finditer(quote) if content_words(m.group()) & wanted)
    return spans


def quoted_lines(
    first_line: int, lines: list[str], claims: list[str], *, marked: set[int] | None = None
) -> Text:
    """Numbered lines (``     14 | text``), the cited words highlighted; ``marked`` get ``>``."""
    out = Text()
    for offset, raw in enumerate(lines):
        number = first_line + offset
        line = neutralize(sanitize(raw))
        gutter = f"  {number:>5} | "
        if marked is not None:
            gutter = (">" if number in marked else " ") + gutter[1:]
        out.append(gutter, STYLE["gutter"])
        text = Text(line)
        if marked is None or number in marked:
            for a, b in cited_spans(line, claims):
                text.stylize(STYLE["cited"], a, b)
        out.append_text(text)
        out.append("\n")
    return out


def answer_view(answer: Answer, *, numbered: bool, footer: str | None = None) -> Text:
    """The answer, its citations with the quoted lines beneath, notes, and a footer.

    ``numbered``: markers stay ``[1]`` and citations are listed as ``[1] path:L14`` (the chat,
    where ``/open 1`` refers to them); otherwise markers become ``[path:L14]`` (``rag ask``).
    """
    out = Text()
    if answer.short_answer and not answer.abstained:
        out.append(sanitize(answer.short_answer), STYLE["short"])
        out.append("\n")
    body = sanitize(answer.answer)
    style = STYLE["abstained"] if answer.abstained else STYLE["answer"]
    position = 0
    for match in _MARKER.finditer(body):
        n = int(match.group(1))
        if not 1 <= n <= len(answer.citations):
            continue
        out.append(body[position : match.start()], style)
        label = f"[{n}]" if numbered else f"[{sanitize(answer.citations[n - 1].anchor)}]"
        out.append(label, STYLE["marker"])
        position = match.end()
    out.append(body[position:], style)
    out.append("\n")
    claims = claims_by_citation(answer)
    if answer.citations:
        out.append("\n")
    for n, citation in enumerate(answer.citations, start=1):
        anchor = sanitize(citation.anchor)
        out.append(f"[{n}] {anchor}" if numbered else f"[{anchor}]", STYLE["anchor"])
        out.append("\n")
        out.append_text(
            quoted_lines(
                citation.shown_line(citation.start_line),
                citation.quote.split("\n"),
                claims.get(n, []),
            )
        )
    if answer.abstained and answer.sources:
        out.append("\nThe closest passages:\n", STYLE["note"])
        for source in answer.sources[:3]:
            out.append(f"  {sanitize(source.anchor)}", STYLE["anchor"])
            snippet = " ".join(source.text.split())
            snippet = snippet[:160] + ("…" if len(snippet) > 160 else "")
            out.append(f"  {sanitize(snippet)}\n", STYLE["note"])
    for note in answer.notes:
        out.append(f"note: {sanitize(note)}\n", STYLE["note"])
    if footer is None:
        footer = f"({answer.backend}, {sanitize(answer.model)}; {answer.timings.total_ms:.0f} ms)"
    out.append("\n" + footer + "\n", STYLE["footer"])
    return out


def chat_footer(answer: Answer) -> str:
    model = "" if answer.backend == "extractive" else f" {sanitize(answer.model)}"
    ms = answer.timings.total_ms
    took = f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"
    return f"{answer.backend}{model} · {took}"


def render_text(answer: Answer, out: TextIO, *, color: bool = False) -> None:
    """``rag ask``: the answer with ``[path:L14]`` markers and the quoted lines."""
    make_console(out, color=color).print(answer_view(answer, numbered=False), end="")


# -- sources, context, errors ---------------------------------------------------
def sources_view(answer: Answer, *, width: int = 100) -> Text:
    """The passages retrieved for ``answer``, best first, with their scores."""
    out = Text()
    if not answer.sources:
        out.append("nothing was retrieved for the last question\n", STYLE["info"])
        return out
    for n, source in enumerate(answer.sources, start=1):
        out.append(f"{n:>2}  ")
        out.append(f"{source.score:.3f}", STYLE["score"])
        out.append(f"  {sanitize(source.anchor)}", STYLE["anchor"])
        if any(
            c.path == source.path and source.start_line <= c.start_line <= source.end_line
            for c in answer.citations
        ):
            out.append("  (cited)", STYLE["info"])
        out.append("\n")
        snippet = " ".join(sanitize(source.text).split())
        if len(snippet) > width:
            snippet = snippet[: width - 1].rstrip() + "…"
        out.append(f"      {snippet}\n", STYLE["gutter"])
    return out


def context_view(
    n: int,
    citation: Citation,
    claims: list[str],
    first_line: int,
    lines: list[str],
    note: str = "",
) -> Text:
    """Citation ``n`` in its file: the surrounding lines, numbered, the cited ones marked."""
    out = Text()
    shown = citation.shown_line  # within its page, for a PDF
    out.append(f"[{n}] {sanitize(citation.anchor)}", STYLE["anchor"])
    if lines:
        last = first_line + len(lines) - 1
        out.append(f"  (lines {shown(first_line)}-{shown(last)})", STYLE["info"])
    out.append("\n")
    if note:
        out.append(f"note: {sanitize(note)}\n", STYLE["note"])
    marked = set(range(shown(citation.start_line), shown(citation.end_line) + 1))
    out.append_text(quoted_lines(shown(first_line), lines, claims, marked=marked))
    return out


def error_view(exc: RagError) -> Text:
    """One line: what is wrong and what to do."""
    out = Text()
    out.append("error: ", STYLE["error"])
    out.append(sanitize(exc.message))
    hint = exc.hint
    if isinstance(exc, LLMError):
        hint = (hint + "; " if hint else "") + "or answer without a model: /backend extractive"
    if hint:
        out.append(f" — {sanitize(hint)}", STYLE["hint"])
    out.append("\n")
    return out


# -- JSON -----------------------------------------------------------------------
def safe_json(value: Any, *, indent: int | None = None) -> str:
    """JSON whose bytes are terminal-safe: control characters only as ``\\u`` escapes."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _C1_OR_DEL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render_json(answer: Answer, out: TextIO) -> None:
    out.write(safe_json(answer.model_dump(mode="json"), indent=2) + "\n")
