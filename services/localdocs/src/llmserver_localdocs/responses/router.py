"""The thin route of OpenAI's Responses API; the gateway forwards /v1/responses here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from llmserver_localdocs.openai_deps import get_vector_stores
from llmserver_localdocs.responses.schemas import ResponsesRequest
from llmserver_localdocs.responses.service import ResponsesService
from llmserver_localdocs.responses.streaming import events, open_chat_stream

router = APIRouter(tags=["responses"])


def get_responses(request: Request) -> ResponsesService:
    return ResponsesService(request.app.state.service, get_vector_stores(request))


ResponsesDep = Annotated[ResponsesService, Depends(get_responses)]


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponsesRequest, responses: ResponsesDep
) -> dict | StreamingResponse:
    if not body.stream:
        return await responses.create(body)
    prepared = await responses.prepare(body)
    upstream = await open_chat_stream(responses.localdocs, prepared)
    return StreamingResponse(
        events(prepared, upstream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
