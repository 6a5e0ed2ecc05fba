"""Readiness: is the index open, which LLM backend would answer, and does it answer (the probe
of the backend is in :mod:`rag.api.probe`)."""

from __future__ import annotations

from rag.api.deps import Services
from rag.api.schemas import ErrorInfo, IndexReadiness, Readiness
from rag.errors import RagError


def readiness(services: Services) -> Readiness:
    try:
        services.answer_service()  # opens the index
        version, _ = services.documents.state()
        index = IndexReadiness(
            opened=True,
            chunks=services.runtime.store.count(),
            documents=len(services.documents.manifest().files),
            version=version,
        )
    except RagError as exc:
        index = IndexReadiness(opened=False, error=ErrorInfo.of(exc))
    return Readiness(
        status="ready" if index.opened else "not_ready", index=index, llm=services.probe.check()
    )
