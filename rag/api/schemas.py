"""Request and response bodies of the HTTP API, with the examples /docs shows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from rag.api.documents import DocumentInfo
from rag.api.jobs.records import JobStatus
from rag.config import Backend
from rag.errors import RagError
from rag.models import Source


def _number_not_text(value: Any) -> Any:
    """JSON integers only: 5 and 5.0 (the same integer to JSON Schema), not "5" or true."""
    if isinstance(value, str | bool):
        raise ValueError("Input should be a valid integer")
    return value


TopK = Annotated[int, Field(ge=1, le=100), BeforeValidator(_number_not_text)]
Prefix = Annotated[str, Field(min_length=1, max_length=1000)]
# Something besides white space, by every definition in play (JSON Schema's ECMA regex, the
# Rust regex pydantic validates with, Python's str.strip the answer service applies).
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
NO_NUL = r"^[^\x00]*$"
# A document path in the URL: no control characters (a trailing %0A would not even route).
DOC_PATH = r"^[^\x00-\x1f\x7f]+$"
JOB_ID = r"^[0-9a-f]{32}$"
PathText = Annotated[str, Field(min_length=1, max_length=4096, pattern=NO_NUL)]
PUTIN = "When did Putin last visit North Korea before this trip?"


class HistoryTurn(BaseModel):
    """An earlier turn of the conversation a follow-up question leans on."""

    model_config = ConfigDict(extra="forbid")

    question: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK)]
    query: Annotated[
        str | None,
        Field(
            max_length=4000,
            description="The standalone question that turn was answered as (its answer's "
            "`query`); default: the question.",
        ),
    ] = None
    answer: Annotated[
        str,
        Field(max_length=8000, description='Its answer ("" when rag abstained).'),
    ] = ""


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": PUTIN, "top_k": 5},
                {"question": PUTIN, "paths": ["004_"], "backend": "extractive", "stream": True},
                {
                    "question": "What did he say about it?",
                    "history": [
                        {"question": PUTIN, "answer": "In July 2000. [1]"},
                    ],
                },
            ]
        },
    )

    question: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK)]
    top_k: TopK | None = None
    paths: Annotated[
        list[Prefix] | None,
        Field(max_length=50, description="Only documents whose path starts with one of these."),
    ] = None
    backend: Backend | None = None
    stream: StrictBool | None = Field(
        None,
        description="Server-Sent Events (token..., citations, done; or error). Default: "
        "whether the Accept header asks for text/event-stream.",
    )
    history: Annotated[
        list[HistoryTurn] | None,
        Field(
            max_length=20,
            description="The conversation so far, oldest first: a follow-up question "
            '("When did he last visit?") is rewritten into a standalone one from it, as '
            "`rag chat` does; the answer's `query` says what was answered.",
        ),
    ] = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "Putin visit North Korea 2000", "top_k": 3}]},
    )

    query: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK)]
    top_k: TopK | None = None
    paths: Annotated[
        list[Prefix] | None,
        Field(max_length=50, description="Only documents whose path starts with one of these."),
    ] = None
    read: bool = Field(
        False,
        description="Also read the best sentences with the cross reader, as POST /v1/ask "
        "does: the order an answer would cite (about 50 ms more on two cores). Without it "
        "passages are ranked by hybrid search and the sentence reader's two passes.",
    )


class SearchResponse(BaseModel):
    query: str
    passages: list[Source] = Field(description="Best first; neighbouring chunks merged.")
    index_version: str
    retrieval_ms: float

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "Putin visit North Korea 2000",
                    "passages": [
                        {
                            "path": "004_5e50463e41e8a191.txt",
                            "start_line": 12,
                            "end_line": 15,
                            "score": 0.032787,
                            "text": "Putin’s last visit to North Korea was in July 2000. ...",
                        }
                    ],
                    "index_version": "3f9a1c0b2d4e",
                    "retrieval_ms": 21.4,
                }
            ]
        }
    )


class IngestPaths(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"paths": ["notes", "todo.md"]}]},
    )

    paths: Annotated[
        list[PathText],
        Field(
            min_length=1,
            max_length=100,
            description="Files or folders inside the allowed roots; relative paths are taken "
            "from the corpus folder.",
        ),
    ]


class IngestAccepted(BaseModel):
    job: JobStatus
    status_url: str = Field(description="Poll this for progress: GET /v1/ingest/{job}.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job": {
                        "id": "5f0c2a9d4b1e4f7a8c3d2e1f0a9b8c7d",
                        "state": "queued",
                        "source": "paths",
                        "paths": ["notes"],
                        "created_at": "2026-01-05T10:00:00+00:00",
                    },
                    "status_url": "/v1/ingest/5f0c2a9d4b1e4f7a8c3d2e1f0a9b8c7d",
                }
            ]
        }
    )


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    count: int
    chunks: int
    index_version: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {
                            "path": "004_5e50463e41e8a191.txt",
                            "size": 4312,
                            "sha256": "9b1f0c" + "0" * 58,
                            "chunks": 7,
                            "ingested_at": "2026-01-05T10:00:03+00:00",
                            "uploaded": False,
                        }
                    ],
                    "count": 1,
                    "chunks": 7,
                    "index_version": "3f9a1c0b2d4e",
                }
            ]
        }
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorInfo(BaseModel):
    code: str
    message: str
    hint: str = ""

    @classmethod
    def of(cls, exc: RagError) -> ErrorInfo:
        return cls(code=exc.code, message=exc.message, hint=exc.hint)


class IndexReadiness(BaseModel):
    opened: bool
    chunks: int = 0
    documents: int = 0
    version: str | None = None
    error: ErrorInfo | None = None


class LLMReadiness(BaseModel):
    backend: str
    model: str
    reason: str
    answering: bool = Field(description="Whether the backend answered a probe just now.")
    error: ErrorInfo | None = None
    available: list[str] = Field(
        default_factory=list,
        description="Backends that can answer now: the configured one if it answered the "
        "probe, and `extractive` (ask with `backend: extractive`), which needs no model.",
    )


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"] = Field(
        description="ready: the index is open and the configured LLM backend answers."
    )
    index: IndexReadiness
    llm: LLMReadiness | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "index": {
                        "opened": True,
                        "chunks": 43,
                        "documents": 5,
                        "version": "3f9a1c0b2d4e",
                    },
                    "llm": {
                        "backend": "ollama",
                        "model": "llama3.2:3b",
                        "reason": "Ollama at http://127.0.0.1:11434 has llama3.2:3b",
                        "answering": True,
                        "available": ["ollama", "extractive"],
                    },
                }
            ]
        }
    )


class LegacyHealth(BaseModel):
    status: str
    backend: str
    backend_reason: str
    model: str
    chunks: int


ANSWER_EXAMPLE: dict[str, Any] = {
    "question": PUTIN,
    "answer": "Putin’s last visit to North Korea was in July 2000. [1]",
    "citations": [
        {
            "path": "004_5e50463e41e8a191.txt",
            "start_line": 14,
            "end_line": 14,
            "quote": "Putin’s last visit to North Korea was in July 2000.",
            "score": 0.032787,
            "support": 1.0,
            "verified": True,
        }
    ],
    "abstained": False,
    "confidence": 0.93,
    "backend": "extractive",
    "model": "none (extractive)",
    "prompt_version": None,
    "timings": {"retrieval_ms": 24.1, "generation_ms": 31.0, "total_ms": 55.1},
    "index_version": "3f9a1c0b2d4e",
}
SSE_EXAMPLE = (
    'event: token\ndata: {"text": "Putin’s last visit to North Korea was in July 2000. [1]"}\n\n'
    'event: citations\ndata: {"citations": [{"path": "004_5e50463e41e8a191.txt", '
    '"start_line": 14, "end_line": 14, "quote": "...", "score": 0.03}]}\n\n'
    'event: done\ndata: {"answer": "Putin’s last visit to North Korea was in July 2000. [1]", '
    '"abstained": false, "...": "the whole answer object"}\n\n'
)
