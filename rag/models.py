"""Data that flows between layers.  Citations are data; front ends only render them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Chunk(BaseModel):
    """A piece of one file: exactly the file's lines ``start_line..end_line``.

    A line longer than a chunk is split; its pieces share the line number and
    differ in character offsets.  Offsets index the decoded file text.
    """

    id: str
    path: str = Field(description="File path relative to the corpus root, with '/' separators.")
    start_line: int = Field(description="First line, 1-based.")
    end_line: int = Field(description="Last line, 1-based, inclusive.")
    start_char: int
    end_char: int
    text: str


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

    @property
    def anchor(self) -> str:
        if self.start_line == self.end_line:
            return f"{self.path}:L{self.start_line}"
        return f"{self.path}:L{self.start_line}-L{self.end_line}"


class Source(BaseModel):
    """A passage retrieved for a question (whether or not the answer cites it)."""

    path: str
    start_line: int
    end_line: int
    score: float
    text: str

    @classmethod
    def of(cls, passage: Passage) -> Source:
        c = passage.chunk
        return cls(
            path=c.path,
            start_line=c.start_line,
            end_line=c.end_line,
            score=passage.score,
            text=c.text,
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
    abstained: bool = False
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
