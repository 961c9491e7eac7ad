"""Thin routes of OpenAI's Files API; the gateway forwards /v1/files* here unchanged."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from python_multipart.exceptions import FormParserError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from llmserver_common.errors import invalid_request
from llmserver_common.openai_retrieval_api import FILE_ID_PATTERN, UPLOAD_NAME
from llmserver_common.openapi import error_responses, multipart_body
from llmserver_common.routing import answer_other_methods
from llmserver_localdocs.openai_deps import FilesDep
from llmserver_localdocs.openai_files.schemas import (
    DeletedFile,
    FileObject,
    FileObjectList,
    FileUpload,
)
from llmserver_localdocs.openai_files.service import too_large
from llmserver_localdocs.openai_shared import Order

logger = logging.getLogger(__name__)

router = APIRouter(tags=["files"])

# Room for the multipart framing and the purpose field around the file itself.
FORM_OVERHEAD = 64 * 1024

FileId = Annotated[str, Path(pattern=FILE_ID_PATTERN, description="A file's id (`file-...`).")]
FileCursor = Annotated[
    str | None, Query(pattern=FILE_ID_PATTERN, description="List after this file's id.")
]
# Every route reads Redis (503 while it is down).
_DOWN = 503


@router.post(
    "/v1/files",
    response_model=FileObject,
    responses=error_responses(400, 413, _DOWN),
    openapi_extra=multipart_body(FileUpload, UPLOAD_NAME),
)
async def upload_file(request: Request, files: FilesDep) -> dict:
    limit = files.settings.files_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise too_large(limit)
    files.files_dir  # noqa: B018  (refuses at once when uploads are not configured)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid_request(
            "Uploads are multipart/form-data with the fields 'file' and 'purpose'.",
            param="file",
        )
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (MultiPartException, FormParserError, StarletteHTTPException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        raise invalid_request(f"The multipart body cannot be read: {detail}", param="file") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        return await files.create(upload.filename, form.get("purpose"), upload.file)
    finally:
        await form.close()


@router.get("/v1/files", response_model=FileObjectList, responses=error_responses(400, 404, _DOWN))
async def list_files(
    files: FilesDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Order = "desc",
    after: FileCursor = None,
) -> dict:
    return await files.list(purpose=purpose, limit=limit, order=order, after=after)


@router.get(
    "/v1/files/{file_id}", response_model=FileObject, responses=error_responses(400, 404, _DOWN)
)
async def retrieve_file(file_id: FileId, files: FilesDep) -> dict:
    return await files.get(file_id)


@router.get(
    "/v1/files/{file_id}/content",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file's bytes, as uploaded.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **error_responses(400, 404, _DOWN),
    },
)
async def file_content(file_id: FileId, files: FilesDep) -> FileResponse:
    path, filename = await files.content_path(file_id)
    return FileResponse(path, filename=filename, media_type="application/octet-stream")


@router.delete(
    "/v1/files/{file_id}", response_model=DeletedFile, responses=error_responses(400, 404, _DOWN)
)
async def delete_file(file_id: FileId, files: FilesDep) -> dict:
    return await files.delete(file_id)


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
