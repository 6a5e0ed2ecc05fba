"""Does the default LLM backend answer?  A probe of it, reused for a few seconds."""

from __future__ import annotations

import threading
import time

from rag.api.schemas import ErrorInfo, LLMReadiness
from rag.errors import RagError
from rag.runtime import Runtime

PROBE_TTL = 5.0  # seconds a probe of the LLM backend is reused


class LLMProbe:
    """Whether the default backend answers; probed at most every PROBE_TTL seconds."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._cached: tuple[float, LLMReadiness] | None = None

    def check(self) -> LLMReadiness:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < PROBE_TTL:
                return self._cached[1]
        result = self._probe()
        with self._lock:
            self._cached = (time.monotonic(), result)
        return result

    def _probe(self) -> LLMReadiness:
        try:
            choice = self.runtime.default_backend
        except RagError as exc:
            backend = self.runtime.settings.llm_backend
            return LLMReadiness(
                backend=backend, model="", reason="", answering=False, error=ErrorInfo.of(exc)
            )
        readiness = LLMReadiness(
            backend=choice.backend, model=choice.model, reason=choice.reason, answering=True
        )
        probe = getattr(choice.llm, "probe", None)
        if callable(probe):
            try:
                probe()
            except RagError as exc:
                readiness.answering, readiness.error = False, ErrorInfo.of(exc)
        return readiness
