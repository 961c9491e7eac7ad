"""Model lifecycle (GET /v1/loaded_models, POST /v1/models/{model}/load and /unload): validated
with the shared lifecycle models, the model name resolved against the catalog (404 for an
unknown one), then forwarded to inference with the gateway's forwarding helper (call_inference).

With several inference replicas each call reaches one of them, as every forwarded call does.
Included before the main router, whose /v1/models/{name} answers 405 to POST on these paths.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from llmserver_common.model_lifecycle_api import (
    LoadedModel,
    LoadedModelList,
    LoadModelRequest,
    UnloadedModel,
)
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.service import GatewayService, UpstreamErrorAnswer

router = APIRouter(tags=["models"])

_UPSTREAM = (401, 502, 503, 504)


async def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


ServiceDep = Annotated[GatewayService, Depends(get_service)]


async def _forward(
    service: GatewayService, method: str, path: str, body: bytes | None = None
) -> Response:
    try:
        _, content = await service.call_inference(method, path, body)
    except UpstreamErrorAnswer as answer:
        return answer.response
    return Response(content, media_type="application/json")


@router.get(
    "/v1/loaded_models",
    responses={200: {"model": LoadedModelList}, **error_responses(*_UPSTREAM)},
)
async def list_loaded_models(service: ServiceDep) -> Response:
    return await _forward(service, "GET", "/v1/loaded_models")


@router.post(
    "/v1/models/{name:path}/load",
    responses={200: {"model": LoadedModel}, **error_responses(400, 404, 413, 500, *_UPSTREAM)},
)
async def load_model(
    name: str,
    service: ServiceDep,
    body: Annotated[LoadModelRequest | None, Body()] = None,
) -> Response:
    model = await service.resolve_any_model(name)
    payload = (body or LoadModelRequest()).model_dump_json(exclude_unset=True).encode()
    return await _forward(service, "POST", f"/v1/models/{quote(model, safe='')}/load", payload)


@router.post(
    "/v1/models/{name:path}/unload",
    responses={200: {"model": UnloadedModel}, **error_responses(404, 409, *_UPSTREAM)},
)
async def unload_model(name: str, service: ServiceDep) -> Response:
    model = await service.resolve_any_model(name)
    return await _forward(service, "POST", f"/v1/models/{quote(model, safe='')}/unload")


answer_other_methods(router)
