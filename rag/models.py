"""Data that flows between layers.  Citations are data; front ends only render them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


def now() -> str:
    """The current UTC time, ISO 8601 to the second (timestamps in the manifest and job records)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def line_anchor(
    path: str, start_line: int, end_line: int, page: int | None, page_first_line: int | None
) -> str:
    """``path:L12-L14``, or for a page of a paged document ``path:p3:L2-L4`` (page lines)."""
    prefix = path
    if page is not None:
        shift = (page_first_line or 1) - 1
        start_line, end_line = start_line - shift, end_line - shift
        prefix = f"{path}:p{page}"
    if start_line == end_line:
        return f"{prefix}:L{start_line}"
    return f"{prefix}:L{start_line}-L{end_line}"


def _page() -> Any:
    return Field(None, description="Page of a paged document (PDF), 1-based; null otherwise.")


def _page_first_line() -> Any:
    return Field(
        None,
        description="The line (as start_line counts) where that page begins: the page's own "
        "line numbers are start_line - page_first_line + 1.",
    )


class Chunk(BaseModel):
    """A piece of one file: exactly the file's lines ``start_line..end_line``.

    A line longer than a chunk is split; its pieces share the line number and
    differ in character offsets.  Offsets index the decoded file text.  A chunk of a
    paged document (PDF) lies within one page; its lines still count from the start of
    the document's text, ``page_first_line`` says where its page begins.
    """

    id: str
    path: str = Field(description="File path relative to the corpus root, with '/' separators.")
    start_line: int = Field(description="First line, 1-based.")
    end_line: int = Field(description="Last line, 1-based, inclusive.")
    start_char: int
    end_char: int
    text: str
    heading: str = Field("", description="Heading path at the first line, e.g. 'A > B'.")
    page: int | None = _page()
    page_first_line: int | None = _page_first_line()

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path (context) and the text."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    @property
    def anchor(self) -> str:
        return line_anchor(
            self.path, self.start_line, self.end_line, self.page, self.page_first_line
        )


class Passage(BaseModel):
    """A retrieved chunk with its relevance score (cosine similarity)."""

    chunk: Chunk
    score: float


class Citation(BaseModel):
    """Lines of one file that support (part of) an answer."""

    path: str
    start_line: int
    end_line: int
    quote: str = Field(description="The cited lines, verbatim.")
    score: float = Field(description="Relevance of the passage the lines come from.")
    support: float = Field(
        1.0, description="Share of the claim's content words (numbers included) in the lines."
    )
    verified: bool = Field(True, description="Support reached the verification threshold.")
    page: int | None = _page()
    page_first_line: int | None = _page_first_line()

    @property
    def anchor(self) -> str:
        """``path:L12-L14``; in a PDF ``path:p3:L2-L4`` (lines of the page)."""
        return line_anchor(
            self.path, self.start_line, self.end_line, self.page, self.page_first_line
        )

    def shown_line(self, line: int) -> int:
        """Line ``line`` as a reader numbers it (within its page, for a PDF)."""
        return line if self.page is None else line - (self.page_first_line or 1) + 1


class Source(BaseModel):
    """A passage retrieved for a question (whether or not the answer cites it)."""

    path: str
    start_line: int
    end_line: int
    score: float
    text: str
    page: int | None = _page()
    page_first_line: int | None = _page_first_line()

    @property
    def anchor(self) -> str:
        return line_anchor(
            self.path, self.start_line, self.end_line, self.page, self.page_first_line
        )

    @classmethod
    def of(cls, passage: Passage) -> Source:
        c = passage.chunk
        return cls(
            path=c.path,
            start_line=c.start_line,
            end_line=c.end_line,
            score=passage.score,
            text=c.text,
            page=c.page,
            page_first_line=c.page_first_line,
        )


class Timings(BaseModel):
    retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    total_ms: float = 0.0


class Answer(BaseModel):
    """An answer: text with ``[n]`` markers referring to ``citations[n-1]``."""

    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    short_answer: str | None = Field(
        None,
        description="The few words that answer, read from the cited lines (extractive; null "
        "when rag abstains, a model wrote the answer or no short answer was found).",
    )
    abstained: bool = False
    query: str | None = Field(
        None,
        description="The standalone question that was answered, when a follow-up was "
        "rewritten from the conversation (null: the question itself).",
    )
    confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="How sure rag is that the answer is in the documents."
    )
    backend: str
    model: str
    backend_reason: str = ""
    prompt_version: str | None = None
    sources: list[Source] = Field(
        default_factory=list, description="The passages retrieved, best first, with scores."
    )
    notes: list[str] = Field(
        default_factory=list, description="What rag changed or dropped, e.g. unsupported text."
    )
    timings: Timings = Field(default_factory=Timings)
    index_version: str | None = Field(
        None,
        description="Which state of the index answered: a short hash of the documents it held "
        "(set by the HTTP API).",
    )
