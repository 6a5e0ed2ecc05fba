"""rag as a llama-index retriever: ``RagRetriever`` returns ``NodeWithScore``s whose nodes
carry the file and lines they come from (``path``, ``start_line``, ``end_line``, ``page``).

Install with ``pip install 'rag[llama-index]'``.  Nothing in rag imports this module: only
code that uses llama-index pays for importing it.

    from llama_index.core.query_engine import RetrieverQueryEngine
    from rag.integrations.llama_index import RagRetriever

    retriever = RagRetriever(url="http://127.0.0.1:8000")      # a running `rag serve`
    # or in-process: RagRetriever(runtime=Runtime(load_settings()))
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)
    response = engine.query("When did Putin last visit North Korea?")
    for hit in response.source_nodes:
        print(hit.node.metadata["anchor"], hit.score)

In-process, retrieval is ``AnswerService.retrieve`` of a ``Runtime`` (hybrid search,
sentence re-ranking, neighbouring passages merged); against a server it is
``POST /v1/search``, which returns the same passages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from rag.errors import InputError, RemoteError
from rag.models import Source

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rag's llama-index retriever needs llama-index-core: pip install 'rag[llama-index]'"
    ) from exc

if TYPE_CHECKING:
    from rag.runtime import Runtime

# Metadata the embedding of a node would not need (llama-index embeds nodes it indexes).
LOCATION_KEYS = ["path", "start_line", "end_line", "page", "anchor", "score"]


def node_of(source: Source) -> NodeWithScore:
    """A retrieved passage as a llama-index node, with where it comes from in metadata."""
    anchor = source.anchor
    metadata: dict[str, Any] = {
        "path": source.path,
        "start_line": source.start_line,
        "end_line": source.end_line,
        "page": source.page,
        "anchor": anchor,
    }
    node = TextNode(
        id_=hashlib.sha256(f"{anchor}\n{source.text}".encode()).hexdigest()[:32],
        text=source.text,
        metadata=metadata,
        excluded_embed_metadata_keys=LOCATION_KEYS,
    )
    return NodeWithScore(node=node, score=source.score)


class RagRetriever(BaseRetriever):
    """Passages from rag, in-process (``runtime=``) or from a server (``url=``)."""

    def __init__(
        self,
        runtime: Runtime | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        top_k: int | None = None,
        paths: Sequence[str] | None = None,
        timeout: float = 60.0,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if (runtime is None) == (url is None):
            raise InputError(
                "RagRetriever needs either runtime= or url=",
                "pass a rag Runtime (in-process) or the base URL of `rag serve`",
            )
        self.runtime = runtime
        self.top_k = top_k
        self.paths = list(paths) if paths else None
        self._client: httpx.Client | None = None
        if url is not None:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.query_str
        sources = self._remote(query) if self._client is not None else self._local(query)
        return [node_of(s) for s in sources]

    def _local(self, query: str) -> list[Source]:
        assert self.runtime is not None
        found = self.runtime.answer_service.retrieve(query, self.top_k, self.paths)
        return [Source.of(p) for p in found.passages]

    def _remote(self, query: str) -> list[Source]:
        assert self._client is not None
        body: dict[str, Any] = {"query": query, "read": True}  # as in-process: cross-read
        if self.top_k is not None:
            body["top_k"] = self.top_k
        if self.paths:
            body["paths"] = self.paths
        try:
            response = self._client.post("/v1/search", json=body)
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"rag server at {self._client.base_url} did not answer: {exc}",
                "start it with `rag serve`, or check the URL",
            ) from None
        if response.status_code != 200:
            raise _remote_error(response)
        return [Source.model_validate(p) for p in response.json()["passages"]]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _remote_error(response: httpx.Response) -> RemoteError:
    try:
        error = response.json()["error"]
        message, hint = str(error["message"]), str(error.get("hint", ""))
        code = str(error.get("code", ""))
    except (ValueError, KeyError, TypeError):
        message, hint, code = response.text[:200], "", ""
    return RemoteError(
        f"rag server answered {response.status_code}: {message}", hint, response.status_code, code
    )
