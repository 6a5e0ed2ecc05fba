"""POST /v1/feedback (mark an answer) and GET /v1/feedback (the marks, each with its state)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rag.api.deps import FeedbackDep
from rag.api.errors import responses
from rag.feedback.records import FeedbackIn, FeedbackList, FeedbackRecord

router = APIRouter(tags=["feedback"])
MAX_LISTED = 1000


@router.post(
    "/v1/feedback",
    status_code=201,
    response_model=FeedbackRecord,
    responses=responses(404),
    summary="Mark an answer: right, wrong, the documents do not say this, the right lines",
    description="Stored beside the index with the answer, its citations, the versions that "
    "made it and each named file's SHA-256; `rag feedback export` turns ready marks into "
    "golden rows for `rag eval`. Lines must lie inside documents of the index (400 "
    "otherwise). Send `id` to mark the same answer again (e.g. add the right lines).",
)
def post_feedback(body: FeedbackIn, feedback: FeedbackDep) -> FeedbackRecord:
    # a plain function: FastAPI runs it in a worker thread (it reads and hashes files)
    return feedback.record(body)


@router.get(
    "/v1/feedback",
    response_model=FeedbackList,
    responses=responses(),
    summary="The marked answers, newest first, each ready, needing lines, or stale",
)
def list_feedback(
    feedback: FeedbackDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED, description="At most this many.")] = 100,
) -> FeedbackList:
    return feedback.listing(limit)
