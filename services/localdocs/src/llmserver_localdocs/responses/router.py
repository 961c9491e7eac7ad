"""The thin route of OpenAI's Responses API; the gateway forwards /v1/responses here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from llmserver_common.openai_responses_api import RESPONSE_ID_PATTERN
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_localdocs.openai_deps import get_vector_stores
from llmserver_localdocs.responses.schemas import DeletedResponse, ResponseObject, ResponsesRequest
from llmserver_localdocs.responses.service import ResponsesService
from llmserver_localdocs.responses.streaming import events, open_chat_stream

router = APIRouter(tags=["responses"])


def get_responses(request: Request) -> ResponsesService:
    return ResponsesService(
        request.app.state.service, get_vector_stores(request), request.app.state.response_store
    )


ResponsesDep = Annotated[ResponsesService, Depends(get_responses)]


# 400 for a bad request, 404 for an unknown model or vector store, and what the inference
# service answers for the generation (429 while the model's queue is full, 502, 503, 504).
RESPONSE_ERRORS = error_responses(400, 404, 429, 502, 503, 504)
RESPONSE_ANSWERS = {
    200: {
        "description": "The Response object; with `stream: true`, OpenAI's server-sent events "
        "(response.created ... response.completed) ending the stream.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ResponseObject"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
}


@router.post(
    "/v1/responses",
    response_model=None,
    responses={**RESPONSE_ANSWERS, **RESPONSE_ERRORS},
)
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


ResponseId = Annotated[
    str, Path(pattern=RESPONSE_ID_PATTERN, description="A stored response's id (`resp_...`).")
]
# 503 as on every localdocs route (the service starting or stopping).
STORED_ERRORS = error_responses(400, 404, 503)


@router.get(
    "/v1/responses/{response_id}",
    response_model=ResponseObject,
    responses=STORED_ERRORS,
)
async def retrieve_response(response_id: ResponseId, responses: ResponsesDep) -> dict:
    """A stored response (404 once deleted or expired)."""
    return responses.kept.get(response_id).response


@router.delete(
    "/v1/responses/{response_id}",
    response_model=DeletedResponse,
    responses=STORED_ERRORS,
)
async def delete_response(response_id: ResponseId, responses: ResponsesDep) -> dict:
    responses.kept.delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


# Any other method on this path: 405 with the whole Allow header.
answer_other_methods(router)
