"""FastAPI dependencies as Annotated aliases; tests override them with app.dependency_overrides."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from rag.answering.answer import AnswerService
from rag.api.documents import DocumentService
from rag.api.jobs.manager import JobManager
from rag.api.paths import PathPolicy
from rag.config import Settings
from rag.feedback.marking import FeedbackService
from rag.runtime import Runtime

OPEN_WAIT = 2.0  # seconds a request waits for a running ingest job before opening the index

if TYPE_CHECKING:
    from rag.api.asking import Asker
    from rag.api.metrics import Metrics
    from rag.api.probe import LLMProbe


@dataclass
class Services:
    """What the routes use, built once per app by ``create_app``."""

    runtime: Runtime
    metrics: Metrics
    asker: Asker
    jobs: JobManager
    documents: DocumentService
    policy: PathPolicy
    probe: LLMProbe

    def answer_service(self) -> AnswerService:
        """The answer service of the index as it is now; built (index opened) while no ingest
        job of this process writes.  Other processes' writes (API workers sharing the index)
        are noticed first: a generation they switched to is opened instead."""
        runtime = self.runtime
        runtime.follow()
        if runtime.built("answer_service"):
            return runtime.answer_service
        with self.jobs.writing(OPEN_WAIT):
            return runtime.answer_service


@dataclass(frozen=True)
class Deadline:
    """When the request must be answered (``RAG_REQUEST_TIMEOUT`` after it arrived)."""

    at: float

    def remaining(self) -> float:
        return self.at - time.monotonic()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_runtime(services: Annotated[Services, Depends(get_services)]) -> Runtime:
    return services.runtime


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_answer_service(services: Annotated[Services, Depends(get_services)]) -> AnswerService:
    # a plain function: FastAPI runs it in a worker thread (the first call opens the index)
    return services.answer_service()


def get_feedback(request: Request) -> FeedbackService:
    feedback: FeedbackService = request.app.state.feedback
    return feedback


def get_deadline(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> Deadline:
    started = request.scope.get("state", {}).get("started", time.monotonic())
    return Deadline(float(started) + settings.request_timeout)


ServicesDep = Annotated[Services, Depends(get_services)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AnswerServiceDep = Annotated[AnswerService, Depends(get_answer_service)]
DeadlineDep = Annotated[Deadline, Depends(get_deadline)]
FeedbackDep = Annotated[FeedbackService, Depends(get_feedback)]
