"""Readiness: is the index open, which LLM backend would answer, and does it answer.

Ready means both: the index is open and the configured backend answered its probe (probes
have their own short timeout, RAG_PROBE_TIMEOUT).  ``llm.available`` lists the backends that
can answer now (``extractive`` always can).
"""

from __future__ import annotations

from rag.adapters.faults import translate
from rag.api.deps import Services
from rag.api.schemas import ErrorInfo, IndexReadiness, Readiness


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
    except Exception as exc:
        known = translate(exc, services.runtime.settings.index_dir)  # a full disk, damage
        if known is None:
            raise
        index = IndexReadiness(opened=False, error=ErrorInfo.of(known))
    llm = services.probe.check()
    ready = index.opened and llm.answering
    return Readiness(status="ready" if ready else "not_ready", index=index, llm=llm)
