"""Ingest jobs (paths or uploads) and the documents the index holds."""

from __future__ import annotations

import contextlib
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from rag.api.asking import in_thread
from rag.api.deps import DeadlineDep, Services, ServicesDep, SettingsDep
from rag.api.documents import DeletedDocument
from rag.api.errors import responses
from rag.api.jobs.records import JobStatus
from rag.api.lines import MAX_RADIUS, DocumentLines, document_lines
from rag.api.multipart import read_form
from rag.api.paths import UPLOADS
from rag.api.schemas import DOC_PATH, JOB_ID, DocumentList, IngestAccepted, IngestPaths, Prefix
from rag.errors import IndexMissingError, UnsupportedMediaTypeError
from rag.runtime import Runtime

router = APIRouter(tags=["documents"])

INGEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Either JSON naming files or folders inside the allowed roots, or a "
        "multipart upload of files (parts named `files`), stored under the corpus folder's "
        f"`{UPLOADS}/` (same name: replaced).",
        "content": {
            "application/json": {
                "schema": IngestPaths.model_json_schema(),
                "example": {"paths": ["notes", "todo.md"]},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                        }
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


def _check_index(runtime: Runtime) -> None:
    """An index built with other settings is refused now (409), not in the job."""
    runtime.follow()  # another worker may have switched the index
    with contextlib.suppress(IndexMissingError):  # missing: the job creates it
        runtime.store.open()


async def _submit_paths(
    request: Request, services: Services, deadline: float, timeout: float
) -> JobStatus:
    try:
        body = IngestPaths.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    services.jobs.ensure_room()
    await in_thread(deadline, timeout, _check_index, services.runtime)
    paths, skipped = await in_thread(deadline, timeout, services.policy.resolve_all, body.paths)
    return await run_in_threadpool(services.jobs.submit, paths, body.paths, "paths", skipped)


async def _submit_upload(
    request: Request, services: Services, deadline: float, timeout: float
) -> JobStatus:
    services.jobs.ensure_room()
    form = await read_form(request.headers, request.stream())
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        policy = services.policy
        policy.check_uploads([(f.filename or "", f.size) for f in files])
        await in_thread(deadline, timeout, _check_index, services.runtime)
        stored = await in_thread(
            deadline,
            timeout,
            policy.store_uploads,
            [(f.filename or "upload.txt", f.file) for f in files],
        )
        given = [f.filename or "" for f in files]
    finally:
        await form.close()
    shown = [p.relative_to(policy.corpus).as_posix() for p in stored]
    renamed = [
        f"the upload {name[:120]!r} was stored as {path} (an upload keeps only a plain file name)"
        for name, path in zip(given, shown, strict=True)
        if name != path.rsplit("/", 1)[-1]
    ]
    return await run_in_threadpool(
        functools.partial(services.jobs.submit, stored, shown, "upload", warnings=renamed)
    )


@router.post(
    "/v1/ingest",
    status_code=202,
    response_model=IngestAccepted,
    responses=responses(403, 404, 409, 429, 503, 504),
    openapi_extra=INGEST_BODY,
    summary="Start an ingest job (paths or uploaded files); poll its progress",
)
async def ingest(
    request: Request, services: ServicesDep, settings: SettingsDep, deadline: DeadlineDep
) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    timeout = settings.request_timeout
    if media == "application/json" or media.endswith("+json"):
        job: JobStatus = await _submit_paths(request, services, deadline.at, timeout)
    elif media == "multipart/form-data":
        job = await _submit_upload(request, services, deadline.at, timeout)
    else:
        raise UnsupportedMediaTypeError(
            f"cannot ingest a {media or 'body without Content-Type'}",
            'send JSON {"paths": [...]} or a multipart/form-data upload of files',
        )
    services.metrics.jobs.inc(job.source)
    url = f"/v1/ingest/{job.id}"
    accepted = IngestAccepted(job=job, status_url=url)
    return JSONResponse(accepted.model_dump(mode="json"), 202, headers={"Location": url})


@router.get(
    "/v1/ingest/{job_id}",
    response_model=JobStatus,
    responses=responses(404),
    summary="An ingest job's progress and report",
)
async def ingest_job(
    job_id: Annotated[str, PathParam(pattern=JOB_ID, description="From POST /v1/ingest.")],
    services: ServicesDep,
) -> JobStatus:
    return await run_in_threadpool(services.jobs.get, job_id)  # may read the shared job table


@router.get(
    "/v1/documents",
    response_model=DocumentList,
    responses=responses(503),
    summary="The documents the index holds",
)
async def documents(
    services: ServicesDep,
    prefix: Annotated[
        list[Prefix] | None,
        Query(description="Only paths starting with one of these (repeat the parameter)."),
    ] = None,
) -> DocumentList:
    docs = await run_in_threadpool(services.documents.documents, prefix)
    return DocumentList(
        documents=docs,
        count=len(docs),
        chunks=sum(d.chunks for d in docs),
        index_version=await run_in_threadpool(services.documents.index_version),
    )


@router.delete(
    "/v1/documents/{path:path}",
    response_model=DeletedDocument,
    responses=responses(403, 404, 409, 503, 504),
    summary="Remove a document and all its chunks from the index",
)
async def delete_document(
    path: Annotated[
        str,
        PathParam(
            min_length=1,
            max_length=4096,
            pattern=DOC_PATH,
            description="The document's path as GET /v1/documents lists it (URL-encoded).",
        ),
    ],
    services: ServicesDep,
    settings: SettingsDep,
    deadline: DeadlineDep,
) -> DeletedDocument:
    wait = max(0.0, min(30.0, deadline.remaining() - 1))
    return await in_thread(
        deadline.at, settings.request_timeout, services.documents.delete, path, wait
    )


@router.get(
    "/v1/lines",
    response_model=DocumentLines,
    responses=responses(403, 404, 504),
    summary="A document's lines with their numbers: a range with context (citations' lines)",
)
async def lines(
    path: Annotated[
        str,
        Query(
            min_length=1,
            max_length=4096,
            pattern=DOC_PATH,
            description="The document as citations name it (relative to the corpus folder).",
        ),
    ],
    start: Annotated[int, Query(ge=1, description="First line (a citation's start_line).")],
    services: ServicesDep,
    settings: SettingsDep,
    deadline: DeadlineDep,
    end: Annotated[
        int | None, Query(ge=1, description="Last line (a citation's end_line); default: start.")
    ] = None,
    radius: Annotated[
        int, Query(ge=0, le=MAX_RADIUS, description="Lines of context on each side.")
    ] = 0,
) -> DocumentLines:
    def read() -> DocumentLines:
        return document_lines(
            services.policy,
            services.documents.manifest(),
            path,
            start,
            end,
            radius,
            settings.max_file_bytes,
        )

    return await in_thread(deadline.at, settings.request_timeout, read)
