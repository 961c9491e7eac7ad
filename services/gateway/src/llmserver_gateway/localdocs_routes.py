"""The LocalDocs management routes: validated here with the LocalDocs API's own models (so
/openapi.json documents each one), then forwarded to the localdocs service unchanged.

A LocalDocs path without a route of its own here (one localdocs has added since) is still
forwarded, by the undocumented catch-all at the end.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from llmserver_common.localdocs_api import (
    COLLECTION_NAME_PATTERN,
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
from llmserver_common.openapi import error_responses, json_body
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.bodies import parse_json_object, read_body, validate
from llmserver_gateway.service import GatewayService, passed_headers

router = APIRouter(tags=["localdocs"])

# The request models of the routes with a body, for the OpenAPI components (app.py).
BODY_MODELS: list[type[BaseModel]] = [
    CreateCollectionRequest,
    AddPathsRequest,
    SearchRequest,
    ActiveCollections,
]

# Every LocalDocs route: localdocs down (503), slow (504) or answering nonsense (502).
_UPSTREAM = (401, 502, 503, 504)


async def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


ServiceDep = Annotated[GatewayService, Depends(get_service)]
Name = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN, description="A collection's name.")]


def _documented(
    answer: type[BaseModel], *errors: int, body: type[BaseModel] | None = None, status: int = 200
) -> dict[str, Any]:
    """The route's OpenAPI: its answer, its errors and (read raw, see _forward) its body."""
    options: dict[str, Any] = {
        "responses": {status: {"model": answer}, **error_responses(*errors, *_UPSTREAM)},
    }
    if status != 200:
        options["status_code"] = status
    if body is not None:
        options["openapi_extra"] = json_body(body)
    return options


async def _forward(
    request: Request,
    service: GatewayService,
    path: str,
    body_model: type[BaseModel] | None = None,
) -> Response:
    """Validate the body against its model, if the route has one, and forward the request.

    Bodies are JSON whatever the client's Content-Type says (as on the chat routes).
    """
    body = await read_body(request, service.settings.max_body_bytes)
    if body_model is not None:
        validate(body_model, parse_json_object(body))
    upstream = await service.call_localdocs(
        request.method,
        path,
        body=body,
        query=request.url.query,
        content_type="application/json",
    )
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        headers=passed_headers(upstream),
        media_type=upstream.headers.get("content-type", "application/json"),
    )


_COLLECTIONS = "/v1/localdocs/collections"


@router.post(
    _COLLECTIONS, **_documented(Collection, 400, 409, 413, body=CreateCollectionRequest, status=201)
)
async def create_collection(request: Request, service: ServiceDep) -> Response:
    """A new collection of folders and files; indexing starts at once."""
    return await _forward(request, service, _COLLECTIONS, CreateCollectionRequest)


@router.get(_COLLECTIONS, **_documented(CollectionList))
async def list_collections(request: Request, service: ServiceDep) -> Response:
    return await _forward(request, service, _COLLECTIONS)


@router.get(_COLLECTIONS + "/{name}", **_documented(Collection, 400, 404))
async def get_collection(name: Name, request: Request, service: ServiceDep) -> Response:
    """The collection with its indexing progress."""
    return await _forward(request, service, f"{_COLLECTIONS}/{name}")


@router.delete(_COLLECTIONS + "/{name}", **_documented(DeletedCollection, 400, 404))
async def delete_collection(name: Name, request: Request, service: ServiceDep) -> Response:
    """Removes the collection and its chunks."""
    return await _forward(request, service, f"{_COLLECTIONS}/{name}")


@router.get(_COLLECTIONS + "/{name}/files", **_documented(FileList, 400, 404))
async def list_files(name: Name, request: Request, service: ServiceDep) -> Response:
    return await _forward(request, service, f"{_COLLECTIONS}/{name}/files")


@router.post(
    _COLLECTIONS + "/{name}/paths", **_documented(Collection, 400, 404, 413, body=AddPathsRequest)
)
async def add_paths(name: Name, request: Request, service: ServiceDep) -> Response:
    """Adds folders or files to the collection."""
    return await _forward(request, service, f"{_COLLECTIONS}/{name}/paths", AddPathsRequest)


@router.delete(_COLLECTIONS + "/{name}/paths", **_documented(Collection, 400, 404, 409))
async def remove_paths(
    name: Name,
    request: Request,
    service: ServiceDep,
    path: Annotated[
        list[str],
        Query(min_length=1, description="A path of the collection (repeatable) to take out."),
    ],
) -> Response:
    """Takes paths out of the collection and drops their files' chunks."""
    return await _forward(request, service, f"{_COLLECTIONS}/{name}/paths")


@router.post(_COLLECTIONS + "/{name}/reindex", **_documented(Collection, 400, 404))
async def reindex(name: Name, request: Request, service: ServiceDep) -> Response:
    """Rescans: new and changed files indexed, removed files dropped."""
    return await _forward(request, service, f"{_COLLECTIONS}/{name}/reindex")


@router.post(
    "/v1/localdocs/search", **_documented(SearchResponse, 400, 404, 413, body=SearchRequest)
)
async def search(request: Request, service: ServiceDep) -> Response:
    """The snippets of the collections that best match the query."""
    return await _forward(request, service, "/v1/localdocs/search", SearchRequest)


@router.get("/v1/localdocs/active", **_documented(ActiveCollections))
async def get_active(request: Request, service: ServiceDep) -> Response:
    """The server-wide collections chat requests retrieve from by default."""
    return await _forward(request, service, "/v1/localdocs/active")


@router.put(
    "/v1/localdocs/active", **_documented(ActiveCollections, 400, 404, 413, body=ActiveCollections)
)
async def put_active(request: Request, service: ServiceDep) -> Response:
    return await _forward(request, service, "/v1/localdocs/active", ActiveCollections)


async def forward_other(path: str, request: Request, service: ServiceDep) -> Response:
    """Any other LocalDocs path or method: localdocs answers (404, 405 with Allow, ...)."""
    return await _forward(request, service, f"/v1/localdocs/{path}")


# Any other method on the paths above: 405 with the whole Allow header, here (before the
# catch-all, which would forward it).
answer_other_methods(router)

router.add_api_route(
    "/v1/localdocs/{path:path}",
    forward_other,
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
