"""Thin routes of OpenAI's Vector Stores API; the gateway forwards /v1/vector_stores* here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

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
    SearchRequest,
    UpdateFileRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileList,
    VectorStoreList,
)

router = APIRouter(tags=["vector_stores"])

Limit = Annotated[int, Query(ge=1, le=100)]
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]
# How often the clients' *_and_poll helpers ask again (they read this header).
POLL_HEADERS = {"openai-poll-after-ms": "250"}


@router.post("/v1/vector_stores", response_model=VectorStore)
async def create_vector_store(body: CreateVectorStoreRequest, stores: VectorStoresDep) -> dict:
    return await stores.create(body)


@router.get("/v1/vector_stores", response_model=VectorStoreList)
async def list_vector_stores(
    stores: VectorStoresDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> dict:
    return await stores.list(limit=limit, order=order, after=after, before=before)


@router.get("/v1/vector_stores/{vector_store_id}", response_model=VectorStore)
async def retrieve_vector_store(vector_store_id: str, stores: VectorStoresDep) -> dict:
    return await stores.get(vector_store_id)


@router.post("/v1/vector_stores/{vector_store_id}", response_model=VectorStore)
async def modify_vector_store(
    vector_store_id: str, body: ModifyVectorStoreRequest, stores: VectorStoresDep
) -> dict:
    return await stores.modify(vector_store_id, body)


@router.delete("/v1/vector_stores/{vector_store_id}", response_model=DeletedVectorStore)
async def delete_vector_store(vector_store_id: str, stores: VectorStoresDep) -> dict:
    return await stores.delete(vector_store_id)


@router.post("/v1/vector_stores/{vector_store_id}/search", response_model=SearchPage)
async def search_vector_store(
    vector_store_id: str, body: SearchRequest, stores: VectorStoresDep
) -> dict:
    return await stores.search(vector_store_id, body)


# -- files ------------------------------------------------------------------------------------


@router.post("/v1/vector_stores/{vector_store_id}/files", response_model=VectorStoreFile)
async def attach_file(
    vector_store_id: str, body: AttachFileRequest, stores: VectorStoresDep
) -> dict:
    return await stores.attach(vector_store_id, body.file_id, body.attributes)


@router.get("/v1/vector_stores/{vector_store_id}/files", response_model=VectorStoreFileList)
async def list_files(
    vector_store_id: str,
    stores: VectorStoresDep,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> dict:
    return await stores.list_files(
        vector_store_id, status=filter, limit=limit, order=order, after=after, before=before
    )


@router.get("/v1/vector_stores/{vector_store_id}/files/{file_id}", response_model=VectorStoreFile)
async def retrieve_file(
    vector_store_id: str, file_id: str, stores: VectorStoresDep, response: Response
) -> dict:
    response.headers.update(POLL_HEADERS)
    return await stores.get_file(vector_store_id, file_id)


@router.post("/v1/vector_stores/{vector_store_id}/files/{file_id}", response_model=VectorStoreFile)
async def update_file(
    vector_store_id: str, file_id: str, body: UpdateFileRequest, stores: VectorStoresDep
) -> dict:
    return await stores.update_file(vector_store_id, file_id, body.attributes)


@router.delete(
    "/v1/vector_stores/{vector_store_id}/files/{file_id}", response_model=DeletedVectorStoreFile
)
async def detach_file(vector_store_id: str, file_id: str, stores: VectorStoresDep) -> dict:
    return await stores.detach(vector_store_id, file_id)


# -- file batches -----------------------------------------------------------------------------


@router.post("/v1/vector_stores/{vector_store_id}/file_batches", response_model=FileBatch)
async def create_batch(
    vector_store_id: str, body: CreateBatchRequest, stores: VectorStoresDep
) -> dict:
    return await stores.create_batch(vector_store_id, body)


@router.get("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}", response_model=FileBatch)
async def retrieve_batch(
    vector_store_id: str, batch_id: str, stores: VectorStoresDep, response: Response
) -> dict:
    response.headers.update(POLL_HEADERS)
    return await stores.get_batch(vector_store_id, batch_id)


@router.post(
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", response_model=FileBatch
)
async def cancel_batch(vector_store_id: str, batch_id: str, stores: VectorStoresDep) -> dict:
    return await stores.cancel_batch(vector_store_id, batch_id)


@router.get(
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    response_model=VectorStoreFileList,
)
async def list_batch_files(
    vector_store_id: str,
    batch_id: str,
    stores: VectorStoresDep,
    filter: StatusFilter | None = None,  # noqa: A002  (OpenAI's parameter name)
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
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
