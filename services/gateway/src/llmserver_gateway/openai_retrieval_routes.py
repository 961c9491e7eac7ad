"""OpenAI's Files, Vector Stores and Responses API (/v1/files*, /v1/vector_stores*,
/v1/responses), answered by the localdocs service: each route documented here with the models
localdocs validates and answers with (llmserver_common.openai_retrieval_api and
openai_responses_api), and forwarded as it
comes, the body streamed through (an upload may be far larger than the JSON body limit;
localdocs holds the upload limit and says 413 itself). Path and query parameters are checked
here too, with the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from llmserver_common.errors import invalid_request
from llmserver_common.openai_responses_api import (
    RESPONSE_ID_PATTERN,
    DeletedResponse,
    ResponseObject,
    ResponsesRequest,
)
from llmserver_common.openai_retrieval_api import (
    BATCH_ID_PATTERN,
    FILE_ID_PATTERN,
    UPLOAD_NAME,
    VECTOR_STORE_ID_PATTERN,
    AttachFileRequest,
    CreateBatchRequest,
    CreateVectorStoreRequest,
    DeletedFile,
    DeletedVectorStore,
    DeletedVectorStoreFile,
    FileBatch,
    FileObject,
    FileObjectList,
    FileUpload,
    ModifyVectorStoreRequest,
    Order,
    SearchPage,
    UpdateFileRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileList,
    VectorStoreList,
    VectorStoreSearchRequest,
)
from llmserver_common.openapi import error_responses, json_body, multipart_body
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.bodies import read_body
from llmserver_gateway.service import GatewayService

logger = logging.getLogger(__name__)

router = APIRouter()

# The request models of the routes with a body (read raw), for the OpenAPI components (app.py);
# ResponseObject too: /v1/responses documents its JSON and its event-stream answer by hand.
BODY_MODELS: list[type[BaseModel]] = [
    FileUpload,
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    VectorStoreSearchRequest,
    AttachFileRequest,
    UpdateFileRequest,
    CreateBatchRequest,
    ResponsesRequest,
    ResponseObject,
]

# Request headers localdocs needs (the multipart boundary is in the Content-Type), and answer
# headers the client needs (a download's name, the poll helpers' interval, retry hints).
_REQUEST_HEADERS = ("content-type", "content-length")
SMALL_BODY_BYTES = 256 * 1024
_ANSWER_HEADERS = ("content-type", "content-disposition", "openai-poll-after-ms", "retry-after")


async def forward(request: Request, *, upload: bool = False) -> Response:
    """The request to localdocs as it came; a JSON body within the gateway's body limit (413),
    an upload (`upload`) streamed through whatever its size."""
    service: GatewayService = request.app.state.service
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    url = service.settings.localdocs_url + raw_path.decode("latin-1")
    if request.url.query:
        url += f"?{request.url.query}"
    headers = {k: request.headers[k] for k in _REQUEST_HEADERS if k in request.headers}
    # Small bodies (JSON requests) are read at once; uploads stream through.
    declared = request.headers.get("content-length", "")
    small = declared.isdigit() and int(declared) <= SMALL_BODY_BYTES
    body: Any = None
    if request.method in ("POST", "PUT", "PATCH"):
        if not upload:
            body = await read_body(request, service.settings.max_body_bytes)
        else:
            body = await request.body() if small else request.stream()
    timeout = service.localdocs_timeout
    if request.url.path.startswith("/v1/responses"):
        # A response waits on a generation: inference's deadline, not the management one.
        settings = service.settings
        timeout = httpx.Timeout(settings.inference_timeout_s, connect=settings.connect_timeout_s)
    try:
        outgoing = service.client.build_request(
            request.method, url, headers=headers, content=body, timeout=timeout
        )
    except httpx.InvalidURL:
        raise invalid_request("The request path or query is not a valid URL.") from None
    try:
        upstream = await service.client.send(outgoing, stream=True)
        passed = {k: upstream.headers[k] for k in _ANSWER_HEADERS if k in upstream.headers}
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            # A streamed Responses answer: relayed as it comes.
            return StreamingResponse(
                _relay(upstream), status_code=upstream.status_code, headers=passed
            )
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
    except httpx.TimeoutException:
        raise service.timed_out("localdocs") from None
    except httpx.HTTPError as exc:
        logger.debug("localdocs request failed: %s", type(exc).__name__)
        raise service.unavailable("localdocs") from None
    return Response(content, status_code=upstream.status_code, headers=passed)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for block in upstream.aiter_raw():
            yield block
    except httpx.HTTPError as exc:
        # The events end here; the client sees the stream close without response.completed.
        logger.warning("localdocs stream broke off: %s", type(exc).__name__)
    finally:
        await upstream.aclose()


# -- the documented routes --------------------------------------------------------------------

# Every route: the API key (401), localdocs unreadable (502), down (503) or slow (504).
_UPSTREAM = (401, 502, 503, 504)
StoreId = Annotated[
    str, Path(pattern=VECTOR_STORE_ID_PATTERN, description="A vector store's id (`vs_...`).")
]
FileId = Annotated[str, Path(pattern=FILE_ID_PATTERN, description="A file's id (`file-...`).")]
BatchId = Annotated[
    str, Path(pattern=BATCH_ID_PATTERN, description="A file batch's id (`vsfb_...`).")
]
FileLimit = Annotated[int, Query(ge=1, le=10_000)]
Limit = Annotated[int, Query(ge=1, le=100)]
# Cursors of the lists: ids of the listed objects (an unknown one is 404).
StoreCursor = Annotated[str | None, Query(pattern=VECTOR_STORE_ID_PATTERN)]
FileCursor = Annotated[str | None, Query(pattern=FILE_ID_PATTERN)]
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]


def _documented(
    answer: type[BaseModel] | None,
    *errors: int,
    body: type[BaseModel] | None = None,
    answers: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The route's OpenAPI: its answer, its errors (localdocs' and the gateway's) and its body
    (read raw by `forward`, so documented by hand)."""
    responses: dict[int | str, dict[str, Any]] = answers or {200: {"model": answer}}
    if body is not None and body is not FileUpload:
        errors = (*errors, 413)  # the gateway's JSON body limit
    options: dict[str, Any] = {"responses": {**responses, **error_responses(*errors, *_UPSTREAM)}}
    if body is FileUpload:
        options["openapi_extra"] = multipart_body(body, UPLOAD_NAME)
    elif body is not None:
        options["openapi_extra"] = json_body(body)
    return options


_STORES = "/v1/vector_stores"
_STORE = _STORES + "/{vector_store_id}"
_CONTENT = {
    200: {
        "description": "The file's bytes, as uploaded.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_RESPONSE = {
    200: {
        "description": "The Response object; with `stream: true`, OpenAI's server-sent events "
        "(response.created ... response.completed) ending the stream.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ResponseObject"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/v1/files", tags=["files"], **_documented(FileObject, 400, 413, body=FileUpload))
async def upload_file(request: Request) -> Response:
    """Stores a file (multipart/form-data: `file`, `purpose`), for vector stores."""
    return await forward(request, upload=True)


@router.get("/v1/files", tags=["files"], **_documented(FileObjectList, 400, 404))
async def list_files(
    request: Request,
    purpose: str | None = None,
    limit: FileLimit = 10_000,
    order: Order = "desc",
    after: FileCursor = None,
) -> Response:
    return await forward(request)


@router.get("/v1/files/{file_id}", tags=["files"], **_documented(FileObject, 400, 404))
async def retrieve_file(file_id: FileId, request: Request) -> Response:
    return await forward(request)


@router.delete("/v1/files/{file_id}", tags=["files"], **_documented(DeletedFile, 400, 404))
async def delete_file(file_id: FileId, request: Request) -> Response:
    """Deletes the file, after taking it out of every vector store."""
    return await forward(request)


@router.get(
    "/v1/files/{file_id}/content", tags=["files"], **_documented(None, 400, 404, answers=_CONTENT)
)
async def file_content(file_id: FileId, request: Request) -> Response:
    return await forward(request)


_VS = {"tags": ["vector_stores"]}


@router.post(_STORES, **_VS, **_documented(VectorStore, 400, 404, body=CreateVectorStoreRequest))
async def create_vector_store(request: Request) -> Response:
    """A vector store (a LocalDocs collection) of uploaded files; indexing starts at once."""
    return await forward(request)


@router.get(_STORES, **_VS, **_documented(VectorStoreList, 400, 404))
async def list_vector_stores(
    request: Request,
    limit: Limit = 20,
    order: Order = "desc",
    after: StoreCursor = None,
    before: StoreCursor = None,
) -> Response:
    return await forward(request)


@router.get(_STORE, **_VS, **_documented(VectorStore, 400, 404))
async def retrieve_vector_store(vector_store_id: StoreId, request: Request) -> Response:
    return await forward(request)


@router.post(_STORE, **_VS, **_documented(VectorStore, 400, 404, body=ModifyVectorStoreRequest))
async def modify_vector_store(vector_store_id: StoreId, request: Request) -> Response:
    return await forward(request)


@router.delete(_STORE, **_VS, **_documented(DeletedVectorStore, 400, 404))
async def delete_vector_store(vector_store_id: StoreId, request: Request) -> Response:
    return await forward(request)


@router.post(
    _STORE + "/search",
    **_VS,
    **_documented(SearchPage, 400, 404, body=VectorStoreSearchRequest),
)
async def search_vector_store(vector_store_id: StoreId, request: Request) -> Response:
    """The store's snippets that best match the query (hybrid search), filtered by attributes."""
    return await forward(request)


@router.post(
    _STORE + "/files", **_VS, **_documented(VectorStoreFile, 400, 404, body=AttachFileRequest)
)
async def attach_file(vector_store_id: StoreId, request: Request) -> Response:
    return await forward(request)


@router.get(_STORE + "/files", **_VS, **_documented(VectorStoreFileList, 400, 404))
async def list_vector_store_files(
    vector_store_id: StoreId,
    request: Request,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: FileCursor = None,
    before: FileCursor = None,
) -> Response:
    return await forward(request)


@router.get(_STORE + "/files/{file_id}", **_VS, **_documented(VectorStoreFile, 400, 404))
async def retrieve_vector_store_file(
    vector_store_id: StoreId, file_id: FileId, request: Request
) -> Response:
    return await forward(request)


@router.post(
    _STORE + "/files/{file_id}",
    **_VS,
    **_documented(VectorStoreFile, 400, 404, body=UpdateFileRequest),
)
async def update_vector_store_file(
    vector_store_id: StoreId, file_id: FileId, request: Request
) -> Response:
    return await forward(request)


@router.delete(_STORE + "/files/{file_id}", **_VS, **_documented(DeletedVectorStoreFile, 400, 404))
async def detach_file(vector_store_id: StoreId, file_id: FileId, request: Request) -> Response:
    return await forward(request)


@router.post(
    _STORE + "/file_batches", **_VS, **_documented(FileBatch, 400, 404, body=CreateBatchRequest)
)
async def create_file_batch(vector_store_id: StoreId, request: Request) -> Response:
    return await forward(request)


@router.get(_STORE + "/file_batches/{batch_id}", **_VS, **_documented(FileBatch, 400, 404))
async def retrieve_file_batch(
    vector_store_id: StoreId, batch_id: BatchId, request: Request
) -> Response:
    return await forward(request)


@router.post(_STORE + "/file_batches/{batch_id}/cancel", **_VS, **_documented(FileBatch, 400, 404))
async def cancel_file_batch(
    vector_store_id: StoreId, batch_id: BatchId, request: Request
) -> Response:
    return await forward(request)


@router.get(
    _STORE + "/file_batches/{batch_id}/files", **_VS, **_documented(VectorStoreFileList, 400, 404)
)
async def list_file_batch_files(
    vector_store_id: StoreId,
    batch_id: BatchId,
    request: Request,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: FileCursor = None,
    before: FileCursor = None,
) -> Response:
    return await forward(request)


@router.post(
    "/v1/responses",
    tags=["responses"],
    **_documented(None, 400, 404, 429, answers=_RESPONSE, body=ResponsesRequest),
)
async def create_response(request: Request) -> Response:
    """A model's answer, with `file_search` over vector stores (OpenAI's Responses API)."""
    return await forward(request)


ResponseId = Annotated[
    str, Path(pattern=RESPONSE_ID_PATTERN, description="A stored response's id (`resp_...`).")
]


@router.get(
    "/v1/responses/{response_id}",
    tags=["responses"],
    **_documented(ResponseObject, 400, 404),
)
async def retrieve_response(response_id: ResponseId, request: Request) -> Response:
    """A stored response (kept for a while unless created with `store: false`)."""
    return await forward(request)


@router.delete(
    "/v1/responses/{response_id}",
    tags=["responses"],
    **_documented(DeletedResponse, 400, 404),
)
async def delete_response(response_id: ResponseId, request: Request) -> Response:
    return await forward(request)


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
