"""FastAPI dependencies as Annotated aliases; tests override them with app.dependency_overrides."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.config import Settings
from rag.runtime import Runtime
from rag.services.answer import AnswerService


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_answer_service(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AnswerService:
    return runtime.answer_service


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AnswerServiceDep = Annotated[AnswerService, Depends(get_answer_service)]
