"""POST /v1/rerank: the body read as the other routes read theirs (413 past the body limit,
JSON whatever the Content-Type), validated with the shared rerank models (documented in
/openapi.json), the model name resolved against the catalog (404 for an unknown one), then
forwarded to an inference replica with the gateway's forwarding helper (call_inference)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from llmserver_common.openapi import error_responses, json_body
from llmserver_common.rerank_api import RerankRequest, RerankResponse
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.bodies import parse_json_object, read_body, validate
from llmserver_gateway.service import GatewayService, UpstreamErrorAnswer

router = APIRouter(tags=["rerank"])

# The request models of the routes that read their body raw, for the OpenAPI components (app.py).
BODY_MODELS: list[type[BaseModel]] = [RerankRequest]


async def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


ServiceDep = Annotated[GatewayService, Depends(get_service)]


@router.post(
    "/v1/rerank",
    responses={
        200: {"model": RerankResponse},
        **error_responses(400, 401, 404, 413, 429, 502, 503, 504),
    },
    openapi_extra=json_body(RerankRequest),
)
async def rerank(request: Request, service: ServiceDep) -> Response:
    data = parse_json_object(await read_body(request, service.settings.max_body_bytes))
    body = validate(RerankRequest, data)
    forwarded = body.model_dump(exclude_none=True)
    if body.model:
        forwarded["model"] = await service.resolve_any_model(body.model)
    try:
        _, content = await service.call_inference(
            "POST", "/v1/rerank", json.dumps(forwarded).encode()
        )
    except UpstreamErrorAnswer as answer:
        return answer.response
    return Response(content, media_type="application/json")


answer_other_methods(router)
