"""Thin routes of OpenAI's Vector Stores API; the gateway forwards /v1/vector_stores* here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from llmserver_common.openai_retrieval_api import (
    BATCH_ID_PATTERN,
    FILE_ID_PATTERN,
    VECTOR_STORE_ID_PATTERN,
)
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_localdocs.openai_deps import VectorStoresDep
from llmserver_localdocs.openai_shared import Order
from llmserver_localdocs.vector_stores.schemas import (
    AttachFileRequest,
    CreateBatchRequest,
    CreateVectorStoreRequest,
    DeletedVectorStore,
    DeletedVectorStoreFile,
    FileBatch,
    ModifyVectorStoreRequest,
    SearchPage,
    UpdateFileRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileList,
    VectorStoreList,
    VectorStoreSearchRequest,
)

router = APIRouter(tags=["vector_stores"])

Limit = Annotated[int, Query(ge=1, le=100)]
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]
# How often the clients' *_and_poll helpers ask again (they read this header).
POLL_HEADERS = {"openai-poll-after-ms": "250"}

StoreId = Annotated[
    str, Path(pattern=VECTOR_STORE_ID_PATTERN, description="A vector store's id (`vs_...`).")
]
FileId = Annotated[str, Path(pattern=FILE_ID_PATTERN, description="A file's id (`file-...`).")]
BatchId = Annotated[
    str, Path(pattern=BATCH_ID_PATTERN, description="A file batch's id (`vsfb_...`).")
]

# Cursors of the lists: ids of the listed objects (an unknown one is 404).
StoreCursor = Annotated[str | None, Query(pattern=VECTOR_STORE_ID_PATTERN)]
FileCursor = Annotated[str | None, Query(pattern=FILE_ID_PATTERN)]

# Every route reads Redis and the store's LocalDocs collection (503 while one is down); 400 for
# a bad id, query or body, 404 for an unknown store, file or batch.
_ERRORS = error_responses(400, 404, 503)
# Searching embeds the query with the inference service (502 unreadable, 504 too slow).
_SEARCH_ERRORS = error_responses(400, 404, 502, 503, 504)
_POLLED = {
    200: {
        "headers": {
            "openai-poll-after-ms": {
                "description": "How long the clients' *_and_poll helpers wait before asking again.",
                "schema": {"type": "integer"},
            }
        }
    }
}


@router.post("/v1/vector_stores", response_model=VectorStore, responses=_ERRORS)
async def create_vector_store(body: CreateVectorStoreRequest, stores: VectorStoresDep) -> dict:
    return await stores.create(body)


@router.get("/v1/vector_stores", response_model=VectorStoreList, responses=_ERRORS)
async def list_vector_stores(
    stores: VectorStoresDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: StoreCursor = None,
    before: StoreCursor = None,
) -> dict:
    return await stores.list(limit=limit, order=order, after=after, before=before)


@router.get("/v1/vector_stores/{vector_store_id}", response_model=VectorStore, responses=_ERRORS)
async def retrieve_vector_store(vector_store_id: StoreId, stores: VectorStoresDep) -> dict:
    return await stores.get(vector_store_id)


@router.post("/v1/vector_stores/{vector_store_id}", response_model=VectorStore, responses=_ERRORS)
async def modify_vector_store(
    vector_store_id: StoreId, body: ModifyVectorStoreRequest, stores: VectorStoresDep
) -> dict:
    return await stores.modify(vector_store_id, body)


@router.delete(
    "/v1/vector_stores/{vector_store_id}", response_model=DeletedVectorStore, responses=_ERRORS
)
async def delete_vector_store(vector_store_id: StoreId, stores: VectorStoresDep) -> dict:
    return await stores.delete(vector_store_id)


@router.post(
    "/v1/vector_stores/{vector_store_id}/search",
    response_model=SearchPage,
    responses=_SEARCH_ERRORS,
)
async def search_vector_store(
    vector_store_id: StoreId, body: VectorStoreSearchRequest, stores: VectorStoresDep
) -> dict:
    return await stores.search(vector_store_id, body)


# -- files ------------------------------------------------------------------------------------


@router.post(
    "/v1/vector_stores/{vector_store_id}/files", response_model=VectorStoreFile, responses=_ERRORS
)
async def attach_file(
    vector_store_id: StoreId, body: AttachFileRequest, stores: VectorStoresDep
) -> dict:
    return await stores.attach(vector_store_id, body.file_id, body.attributes)


@router.get(
    "/v1/vector_stores/{vector_store_id}/files",
    response_model=VectorStoreFileList,
    responses=_ERRORS,
)
async def list_files(
    vector_store_id: StoreId,
    stores: VectorStoresDep,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: FileCursor = None,
    before: FileCursor = None,
) -> dict:
    return await stores.list_files(
        vector_store_id, status=filter, limit=limit, order=order, after=after, before=before
    )


@router.get(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    response_model=VectorStoreFile,
    responses={**_ERRORS, **_POLLED},
)
async def retrieve_file(
    vector_store_id: StoreId, file_id: FileId, stores: VectorStoresDep, response: Response
) -> dict:
    response.headers.update(POLL_HEADERS)
    return await stores.get_file(vector_store_id, file_id)


@router.post(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    response_model=VectorStoreFile,
    responses=_ERRORS,
)
async def update_file(
    vector_store_id: StoreId, file_id: FileId, body: UpdateFileRequest, stores: VectorStoresDep
) -> dict:
    return await stores.update_file(vector_store_id, file_id, body.attributes)


@router.delete(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}",
    response_model=DeletedVectorStoreFile,
    responses=_ERRORS,
)
async def detach_file(vector_store_id: StoreId, file_id: FileId, stores: VectorStoresDep) -> dict:
    return await stores.detach(vector_store_id, file_id)


# -- file batches -----------------------------------------------------------------------------


@router.post(
    "/v1/vector_stores/{vector_store_id}/file_batches", response_model=FileBatch, responses=_ERRORS
)
async def create_batch(
    vector_store_id: StoreId, body: CreateBatchRequest, stores: VectorStoresDep
) -> dict:
    return await stores.create_batch(vector_store_id, body)


@router.get(
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}",
    response_model=FileBatch,
    responses={**_ERRORS, **_POLLED},
)
async def retrieve_batch(
    vector_store_id: StoreId, batch_id: BatchId, stores: VectorStoresDep, response: Response
) -> dict:
    response.headers.update(POLL_HEADERS)
    return await stores.get_batch(vector_store_id, batch_id)


@router.post(
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    response_model=FileBatch,
    responses=_ERRORS,
)
async def cancel_batch(
    vector_store_id: StoreId, batch_id: BatchId, stores: VectorStoresDep
) -> dict:
    return await stores.cancel_batch(vector_store_id, batch_id)


@router.get(
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    response_model=VectorStoreFileList,
    responses=_ERRORS,
)
async def list_batch_files(
    vector_store_id: StoreId,
    batch_id: BatchId,
    stores: VectorStoresDep,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: FileCursor = None,
    before: FileCursor = None,
) -> dict:
    await stores.get_batch(vector_store_id, batch_id)
    return await stores.list_files(
        vector_store_id,
        status=filter,
        limit=limit,
        order=order,
        after=after,
        before=before,
        batch_id=batch_id,
    )


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
