"""Thin routes of the LocalDocs API; the gateway forwards /v1/localdocs/* here unchanged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from llmserver_common.errors import error_body
from llmserver_common.localdocs_api import COLLECTION_NAME_PATTERN
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_localdocs.collection_management import validate_name
from llmserver_localdocs.schemas import (
    ActiveCollections,
    AddPathsRequest,
    Collection,
    CollectionList,
    CreateCollectionRequest,
    DeletedCollection,
    FileList,
    SearchRequest,
    SearchResponse,
)
from llmserver_localdocs.service import LocalDocsService


def get_service(request: Request) -> LocalDocsService:
    return request.app.state.service


Service = Annotated[LocalDocsService, Depends(get_service)]
Name = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN, description="A collection's name.")]

router = APIRouter(tags=["localdocs"])

# Every route reads Redis or Weaviate (503 while one is down); search embeds the query with the
# inference service (502 unreadable, 503 down, 504 too slow).
_DOWN = 503
_EMBEDDING = (502, 503, 504)


@router.get("/health", responses=error_responses(503))
async def health(service: Service) -> JSONResponse:
    checks = await service.health()
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        body = error_body(f"Not ready: {', '.join(down)} not answering.", "service_unavailable")
        body.update({"status": "unavailable", "checks": checks})
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ok", "checks": checks})


@router.post(
    "/v1/localdocs/collections",
    status_code=201,
    response_model=Collection,
    responses=error_responses(400, 409, _DOWN),
)
async def create_collection(body: CreateCollectionRequest, service: Service) -> dict:
    return await service.create_collection(body.name, body.paths)


@router.get(
    "/v1/localdocs/collections", response_model=CollectionList, responses=error_responses(_DOWN)
)
async def list_collections(service: Service) -> dict:
    return {"data": await service.list_collections()}


@router.get(
    "/v1/localdocs/collections/{name}",
    response_model=Collection,
    responses=error_responses(400, 404, _DOWN),
)
async def get_collection(name: Name, service: Service) -> dict:
    return await service.get_collection(validate_name(name))


@router.get(
    "/v1/localdocs/collections/{name}/files",
    response_model=FileList,
    responses=error_responses(400, 404, _DOWN),
)
async def list_files(name: Name, service: Service) -> dict:
    return {"collection": name, "data": await service.list_files(validate_name(name))}


@router.post(
    "/v1/localdocs/collections/{name}/paths",
    response_model=Collection,
    responses=error_responses(400, 404, _DOWN),
)
async def add_paths(name: Name, body: AddPathsRequest, service: Service) -> dict:
    return await service.add_paths(validate_name(name), body.paths)


@router.delete(
    "/v1/localdocs/collections/{name}/paths",
    response_model=Collection,
    responses=error_responses(400, 404, 409, _DOWN),
)
async def remove_paths(
    name: Name, service: Service, path: Annotated[list[str], Query(min_length=1)]
) -> dict:
    return await service.remove_paths(validate_name(name), path)


@router.post(
    "/v1/localdocs/collections/{name}/reindex",
    response_model=Collection,
    responses=error_responses(400, 404, _DOWN),
)
async def reindex(name: Name, service: Service) -> dict:
    return await service.reindex(validate_name(name))


@router.delete(
    "/v1/localdocs/collections/{name}",
    response_model=DeletedCollection,
    responses=error_responses(400, 404, _DOWN),
)
async def delete_collection(name: Name, service: Service) -> dict:
    await service.delete_collection(validate_name(name))
    return {"name": name}


@router.post(
    "/v1/localdocs/search",
    response_model=SearchResponse,
    responses=error_responses(400, 404, *_EMBEDDING),
)
async def search(body: SearchRequest, service: Service) -> dict:
    return {"data": await service.search(body.query, body.collections, body.k)}


@router.get(
    "/v1/localdocs/active", response_model=ActiveCollections, responses=error_responses(_DOWN)
)
async def get_active(service: Service) -> dict:
    return {"collections": await service.get_active()}


@router.put(
    "/v1/localdocs/active",
    response_model=ActiveCollections,
    responses=error_responses(400, 404, _DOWN),
)
async def put_active(body: ActiveCollections, service: Service) -> dict:
    return {"collections": await service.set_active(body.collections)}


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
