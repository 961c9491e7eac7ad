"""POST /v1/rerank: validated with the shared rerank models (so /openapi.json documents it),
the model name resolved against the catalog (404 for an unknown one), then forwarded to an
inference replica with the gateway's forwarding helper (call_inference)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from llmserver_common.openapi import error_responses
from llmserver_common.rerank_api import RerankRequest, RerankResponse
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.service import GatewayService, UpstreamErrorAnswer

router = APIRouter(tags=["rerank"])


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
)
async def rerank(body: RerankRequest, service: ServiceDep) -> Response:
    data = body.model_dump(exclude_none=True)
    if body.model:
        data["model"] = await service.resolve_any_model(body.model)
    try:
        _, content = await service.call_inference("POST", "/v1/rerank", json.dumps(data).encode())
    except UpstreamErrorAnswer as answer:
        return answer.response
    return Response(content, media_type="application/json")


answer_other_methods(router)
