"""The exceptions rag raises, and nothing else crosses a boundary.

Every error carries a one-line ``message`` saying what is wrong and a ``hint``
saying how to fix it.  The HTTP layer maps each class to a status code in one
handler; the CLI prints ``message`` and ``hint`` and exits non-zero.

    RagError
    ├── ConfigError            settings that cannot work (bad value, bad rag.toml)
    │   └── ReaderModelError   the reader's model file is missing, altered or out of date
    ├── InputError             a path or request the user gave is unusable
    │   └── EmptyCorpusError   nothing ingestible was found
    ├── IndexStateError            the index is missing, corrupt or incompatible
    │   ├── IndexMissingError  no index yet: run `rag ingest`
    │   └── IndexMismatchError built with another embedding model or chunker
    ├── PromptError            a prompt template is missing or lacks a variable
    ├── RemoteError            a rag server called over HTTP answered with an error
    └── LLMError               the language model backend failed
        ├── LLMUnavailableError   backend not reachable / not installed
        ├── ModelNotFoundError    backend up, model missing (`ollama pull`)
        ├── LLMTimeoutError       connect or first-token deadline passed
        └── LLMStreamError        the answer stream broke or ended early
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


class IndexStateError(RagError):
    code = "index_error"


class IndexMissingError(IndexStateError):
    code = "index_missing"


class IndexMismatchError(IndexStateError):
    code = "index_mismatch"


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
