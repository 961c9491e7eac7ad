"""The thin route of OpenAI's Responses API; the gateway forwards /v1/responses here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from llmserver_localdocs.openai_deps import get_vector_stores
from llmserver_localdocs.responses.schemas import ResponsesRequest
from llmserver_localdocs.responses.service import ResponsesService

router = APIRouter(tags=["responses"])


def get_responses(request: Request) -> ResponsesService:
    return ResponsesService(request.app.state.service, get_vector_stores(request))


ResponsesDep = Annotated[ResponsesService, Depends(get_responses)]


@router.post("/v1/responses")
async def create_response(body: ResponsesRequest, responses: ResponsesDep) -> dict:
    return await responses.create(body)
