"""What a person's mark on an answer holds: the request (``FeedbackIn``, shared by the HTTP
API and `rag chat`) and the stored record (``FeedbackRecord``) with its state.

A mark is ``right``, ``wrong`` or ``unanswerable`` ("the documents do not say this").  Lines
come in two kinds: ``lines``, the lines that do answer (they become the golden row's
evidence), and ``unsupported``, cited lines that do not support the answer.  Each record
keeps the text its lines had when marked, and the SHA-256 of every file it names, so a file
that changes later makes the record *stale* instead of silently pointing at other lines.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Mark = Literal["right", "wrong", "unanswerable"]
Origin = Literal["page", "chat", "api"]
State = Literal["ready", "needs lines", "stale"]
MAX_SPAN = 200  # lines one range may name
NOT_BLANK = r"[^\s]"
NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"


class LineRange(BaseModel):
    """Lines ``start_line..end_line`` (1-based, inclusive, at most ``MAX_SPAN``) of one
    document, named as citations name it (relative to the corpus folder)."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_CONTROL)]
    start_line: Annotated[int, Field(ge=1, le=10_000_000)]
    end_line: Annotated[int, Field(ge=1, le=10_000_000)]

    def problem(self) -> str:
        """What is wrong with the range itself ("" if nothing); checked by the service, after
        the document is known (so an unknown document is a 404 first)."""
        if self.end_line < self.start_line:
            return "end_line must not be before start_line"
        if self.end_line - self.start_line >= MAX_SPAN:
            return f"a range may name at most {MAX_SPAN} lines"
        return ""

    @property
    def anchor(self) -> str:
        if self.start_line == self.end_line:
            return f"{self.path}:L{self.start_line}"
        return f"{self.path}:L{self.start_line}-L{self.end_line}"


class MarkedLines(LineRange):
    """A range as it read when it was marked."""

    model_config = ConfigDict(extra="ignore")

    text: list[str] = Field(default_factory=list, description="The lines, as they were.")


class FeedbackIn(BaseModel):
    """A mark on one answer: the answer as it was shown, and what the person says of it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "mark": "wrong",
                    "question": "When did Putin last visit North Korea before this trip?",
                    "answer": "He arrived on Wednesday. [1]",
                    "citations": [
                        {"path": "000_2f75ad98d5781bb4.txt", "start_line": 5, "end_line": 5}
                    ],
                    "backend": "extractive",
                    "model": "none (extractive)",
                    "lines": [
                        {"path": "004_5e50463e41e8a191.txt", "start_line": 14, "end_line": 14}
                    ],
                }
            ]
        },
    )

    mark: Mark = Field(
        description='"right", "wrong", or "unanswerable" (the documents do not say this).'
    )
    question: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK)]
    query: Annotated[
        str | None,
        Field(
            max_length=4000,
            description="The standalone question the answer was for, when a follow-up was "
            "rewritten (the answer's `query`).",
        ),
    ] = None
    answer: Annotated[str, Field(max_length=20_000)] = ""
    abstained: bool = False
    citations: Annotated[list[LineRange], Field(max_length=50)] = Field(
        default_factory=list, description="The answer's citations, in order."
    )
    backend: Annotated[str, Field(max_length=200)] = ""
    model: Annotated[str, Field(max_length=500)] = ""
    index_version: Annotated[str | None, Field(max_length=64)] = None
    lines: Annotated[list[LineRange], Field(max_length=20)] = Field(
        default_factory=list,
        description="The lines that do answer the question (the golden row's evidence).",
    )
    unsupported: Annotated[list[LineRange], Field(max_length=50)] = Field(
        default_factory=list, description="Cited lines that do not support the answer."
    )
    expected: Annotated[
        str | None,
        Field(max_length=500, description="The right answer in a few words, if known."),
    ] = None
    origin: Literal["page", "api"] = Field(
        "api", description='Where the mark was given: "page" (the web page) or "api".'
    )
    id: Annotated[
        int | None,
        Field(
            ge=1,
            description="Replace the mark, lines and words of this earlier record (the same "
            "answer marked again); the answer it recorded is kept.",
        ),
    ] = None


class FeedbackRecord(BaseModel):
    """A stored mark, with where it stands now."""

    id: int
    created_at: str
    updated_at: str
    origin: Origin
    mark: Mark
    question: str
    query: str | None = None
    answer: str
    abstained: bool
    expected: str | None = None
    citations: list[MarkedLines]
    lines: list[MarkedLines]
    unsupported: list[MarkedLines]
    backend: str
    model: str
    reader_version: str | None = None
    index_version: str | None = None
    files: dict[str, str | None] = Field(
        description="SHA-256 of each file the record names, when it was marked."
    )
    state: State = Field(
        "ready",
        description='"ready" (exported as a golden row), "needs lines" (a wrong answer '
        'without the right lines), or "stale" (a file it names changed or is gone).',
    )
    problems: list[str] = Field(
        default_factory=list, description="Why it is not ready: files changed, lines missing."
    )

    @property
    def asked(self) -> str:
        """The question as it can be asked alone (the rewritten follow-up, if any)."""
        return self.query or self.question


class FeedbackList(BaseModel):
    count: int
    ready: int = Field(description="Records `rag feedback export` writes as golden rows.")
    stale: int
    feedback: list[FeedbackRecord]
