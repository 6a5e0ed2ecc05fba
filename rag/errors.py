"""The exceptions rag raises, and nothing else crosses a boundary: the whole tree, in one place.

Every error carries a one-line ``message`` saying what is wrong and a ``hint``
saying how to fix it, and a ``code`` clients can match on.  The HTTP layer maps each class to
a status code in one table (:mod:`rag.api.errors`); the CLI prints ``message`` and ``hint``
and exits non-zero.

    RagError
    ├── ConfigError            settings that cannot work (bad value, bad rag.toml)
    │   └── ReaderModelError   the reader's model file is missing, altered or out of date
    ├── InputError             a path or request the user gave is unusable
    │   ├── EmptyCorpusError   nothing ingestible was found
    │   ├── LineRangeError     a line range too long or past the document (GET /v1/lines)
    │   └── UnsupportedParameterError  an OpenAI request parameter rag cannot honour (400)
    ├── IndexStateError            the index is missing, corrupt or incompatible
    │   ├── IndexMissingError  no index yet: run `rag ingest`
    │   ├── IndexMismatchError built with another embedding model or chunker
    │   ├── IndexLockedError   another process is writing this index
    │   ├── ManifestDamagedError   the manifest is torn, truncated or not ours
    │   └── IndexDamagedError  a store of the index fails its integrity check (503)
    ├── DiskFullError          no space left on the index's file system (507)
    ├── PromptError            a prompt template is missing or lacks a variable
    ├── RemoteError            a rag server called over HTTP answered with an error
    ├── LLMError               the language model backend failed
    │   ├── LLMUnavailableError   backend not reachable / not installed
    │   ├── ModelNotFoundError    backend up, model missing (`ollama pull`)
    │   ├── LLMTimeoutError       connect or first-token deadline passed
    │   └── LLMStreamError        the answer stream broke or ended early
    │   (what the HTTP API adds: documents, paths and ingest jobs)
    ├── PathNotAllowedError    a path outside the allowed roots (403)
    ├── PathNotFoundError      a path that does not exist (404)
    ├── UploadTooLargeError    an uploaded file over the size limit (413)
    ├── DocumentNotFoundError  no such document in the index (404)
    ├── JobNotFoundError       no such ingest job (404)
    ├── JobQueueFullError      too many ingest jobs waiting (429, Retry-After)
    ├── FeedbackNotFoundError  no such feedback record (404)
    ├── IndexBusyError         an ingest job is writing the index (503, Retry-After)
    │   (what only the HTTP layer raises: the request itself)
    ├── UnauthorizedError      no or a wrong API key (401)
    ├── PayloadTooLargeError   a request body over the limit (413)
    ├── UnsupportedMediaTypeError  an ingest body neither JSON nor multipart (415)
    ├── RequestTimeoutError    the request body came too slowly (408)
    ├── UntrustedHostError     a Host header not in RAG_TRUSTED_HOSTS (400)
    ├── DeadlineExceededError  the answer took longer than RAG_REQUEST_TIMEOUT (504)
    ├── UnknownModelError      a model name the OpenAI-compatible routes do not serve (404)
    ├── OverloadedError        too much work already (429 or 503, Retry-After)
    └── ClientGoneError        the client left before the answer (499, never sent)

Three exceptions are signals inside one module and never cross a boundary, so they stay
there: ``FormatError`` (a file the loader skips, :mod:`rag.indexing.formats.base`),
``JobCancelledError`` (:mod:`rag.api.jobs.manager`) and ``StopGenerationError``
(:mod:`rag.api.asking`).
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can act on."""

    code = "rag_error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(RagError):
    code = "config_error"


class ReaderModelError(ConfigError):
    code = "reader_model_error"


class InputError(RagError):
    code = "bad_input"


class EmptyCorpusError(InputError):
    code = "empty_corpus"


class LineRangeError(InputError):
    code = "bad_line_range"


class IndexStateError(RagError):
    code = "index_error"


class IndexMissingError(IndexStateError):
    code = "index_missing"


class IndexMismatchError(IndexStateError):
    code = "index_mismatch"


class IndexLockedError(IndexStateError):
    """Another process is writing this index."""


class ManifestDamagedError(IndexStateError):
    """The manifest file exists but cannot be trusted (torn, truncated, not ours)."""


class IndexDamagedError(IndexStateError):
    """A store of the index (Chroma's SQLite or HNSW files, the keyword index) is damaged:
    it failed an integrity check, or a read of it failed.  ``rag ingest --rebuild`` heals it."""

    code = "index_damaged"


class DiskFullError(RagError):
    """No space left on the file system that holds the index (ENOSPC, SQLite's "disk is
    full", or a failed write with no free space)."""

    code = "disk_full"


class PromptError(RagError):
    code = "prompt_error"


class LLMError(RagError):
    code = "llm_error"


class LLMUnavailableError(LLMError):
    code = "llm_unavailable"


class ModelNotFoundError(LLMError):
    code = "model_not_found"


class LLMTimeoutError(LLMError):
    code = "llm_timeout"


class LLMStreamError(LLMError):
    code = "llm_stream_error"


class RemoteError(RagError):
    """A rag server called over HTTP answered with an error (its code, message and hint)."""

    code = "remote_error"

    def __init__(
        self, message: str, hint: str = "", http_status: int | None = None, remote_code: str = ""
    ) -> None:
        super().__init__(message, hint)
        self.http_status = http_status
        self.remote_code = remote_code


# -- what the HTTP API adds: documents, paths and ingest jobs --------------------------------
class PathNotAllowedError(RagError):
    """A path outside the allowed roots, or one that tries to climb out of them."""

    code = "path_not_allowed"


class PathNotFoundError(RagError):
    code = "path_not_found"


class UploadTooLargeError(RagError):
    code = "upload_too_large"


class DocumentNotFoundError(RagError):
    code = "document_not_found"


class JobNotFoundError(RagError):
    code = "job_not_found"


class FeedbackNotFoundError(RagError):
    code = "feedback_not_found"


class JobQueueFullError(RagError):
    code = "ingest_queue_full"
    retry_after = 5


class IndexBusyError(RagError):
    code = "index_busy"
    retry_after = 5


# -- what only the HTTP layer raises: the request itself -------------------------------------
class UnauthorizedError(RagError):
    code = "unauthorized"


class PayloadTooLargeError(RagError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(RagError):
    code = "unsupported_media_type"


class RequestTimeoutError(RagError):
    code = "request_timeout"


class UntrustedHostError(RagError):
    code = "untrusted_host"


class DeadlineExceededError(RagError):
    code = "deadline_exceeded"


class UnknownModelError(RagError):
    """A model name the OpenAI-compatible routes do not serve."""

    code = "model_not_found"


class UnsupportedParameterError(InputError):
    """An OpenAI request parameter rag cannot honour (tools, n > 1, logprobs...)."""

    code = "unsupported_parameter"


class OverloadedError(RagError):
    """Too much work already: 429 (refused at once) or 503 (waited, gave up)."""

    code = "overloaded"

    def __init__(self, message: str, hint: str, status: int, retry_after: int) -> None:
        super().__init__(message, hint)
        self.status = status
        self.retry_after = retry_after


class ClientGoneError(RagError):
    code = "client_closed_request"
    status = 499  # never seen by the client: it left
