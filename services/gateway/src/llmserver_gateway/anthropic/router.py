"""POST /v1/messages (Anthropic's Messages API) and /v1/messages/count_tokens: the body read and
validated with the shared Anthropic models, turned into a chat request (translate.py) for an
inference replica, the answer turned back into a Message or Anthropic's event stream. Every
error of these routes has Anthropic's envelope (errors.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from llmserver_common.anthropic_api import (
    AnthropicErrorResponse,
    CountTokensRequest,
    CountTokensResponse,
    Message,
    MessagesRequest,
)
from llmserver_common.errors import APIError
from llmserver_common.openapi import json_body
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.anthropic import errors, translate
from llmserver_gateway.anthropic.streaming import anthropic_events
from llmserver_gateway.bodies import check_max_tokens, parse_json_object, read_body, validate
from llmserver_gateway.forwarding import UpstreamErrorAnswer, upstream_error_response
from llmserver_gateway.service import GatewayService

router = APIRouter(tags=["anthropic"])

# The models of the bodies read raw, and the error envelope, for the OpenAPI components.
BODY_MODELS: list[type[BaseModel]] = [MessagesRequest, CountTokensRequest, AnthropicErrorResponse]

# With stream: true the 200 is Anthropic's event stream (`event:` name, `data:` JSON).
_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {
                    "enum": [
                        "message_start",
                        "ping",
                        "content_block_start",
                        "content_block_delta",
                        "content_block_stop",
                        "message_delta",
                        "message_stop",
                        "error",
                    ]
                },
                "data": {
                    "type": "string",
                    "description": "The event as JSON, its `type` the event's name: "
                    "message_start, ping, per content block content_block_start / "
                    "content_block_delta (text_delta, thinking_delta, input_json_delta) / "
                    "content_block_stop, then message_delta (stop_reason, usage), message_stop.",
                },
            },
        }
    }
}

_ERRORS = (400, 401, 404, 413, 429, 502, 503, 504)


async def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


ServiceDep = Annotated[GatewayService, Depends(get_service)]


async def _anthropic_errors(answer: Callable[[], Awaitable[Response]]) -> Response:
    """Run a route, answering its errors in Anthropic's envelope."""
    try:
        return await answer()
    except APIError as error:
        return errors.from_api_error(error)
    except UpstreamErrorAnswer as upstream:
        return errors.from_openai_response(upstream.response)


async def _read(request: Request, service: GatewayService) -> dict[str, Any]:
    return parse_json_object(await read_body(request, service.settings.max_body_bytes))


@router.post(
    "/v1/messages",
    responses={
        200: {
            "model": Message,
            "description": "The Message; with stream: true Anthropic's event stream.",
            "content": _EVENT_STREAM,
        },
        **errors.documented_errors(*_ERRORS),
    },
    openapi_extra=json_body(MessagesRequest),
)
async def create_message(request: Request, service: ServiceDep) -> Response:
    async def answer() -> Response:
        data = await _read(request, service)
        body = validate(MessagesRequest, data)
        check_max_tokens(data, service.settings.max_tokens_cap)
        model = await service.resolve_generation_model(body.model)
        chat = json.dumps(translate.chat_request(body, model)).encode()
        if body.stream:
            return await _stream(service, chat, model)
        _, content = await service.call_inference("POST", "/v1/chat/completions", chat)
        try:
            result = json.loads(content)
        except ValueError:
            raise APIError(502, "The inference service sent an unreadable answer.") from None
        message = translate.message(result)
        service.metrics.count_tokens(model, message["usage"]["output_tokens"])
        return JSONResponse(message)

    return await _anthropic_errors(answer)


async def _stream(service: GatewayService, chat: bytes, model: str) -> Response:
    upstream, replica = await service.open_inference("POST", "/v1/chat/completions", chat)
    if upstream.status_code != 200:
        # An error before the stream started is an ordinary HTTP error, as Anthropic's is.
        try:
            content = await upstream.aread()
        except Exception:
            content = b""
        finally:
            await upstream.aclose()
            service.release(replica)
        raise UpstreamErrorAnswer(upstream_error_response(upstream, content, "inference"))

    def on_done(tokens: int) -> None:
        service.release(replica)
        service.metrics.count_tokens(model, tokens)

    return StreamingResponse(
        anthropic_events(upstream, model, on_done),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@router.post(
    "/v1/messages/count_tokens",
    responses={200: {"model": CountTokensResponse}, **errors.documented_errors(*_ERRORS)},
    openapi_extra=json_body(CountTokensRequest),
)
async def count_tokens(request: Request, service: ServiceDep) -> Response:
    async def answer() -> Response:
        body = validate(CountTokensRequest, await _read(request, service))
        model = await service.resolve_generation_model(body.model)
        # The prompt as the chat template renders it, counted by inference: a one-token
        # generation reports it as usage.prompt_tokens.
        chat = {
            "model": model,
            "messages": translate.chat_messages(body),
            "max_tokens": 1,
            **translate.tools(body),
        }
        _, content = await service.call_inference(
            "POST", "/v1/chat/completions", json.dumps(chat).encode()
        )
        try:
            usage = json.loads(content)["usage"]
            return JSONResponse({"input_tokens": int(usage["prompt_tokens"])})
        except (ValueError, KeyError, TypeError):
            raise APIError(502, "The inference service sent an unreadable answer.") from None

    return await _anthropic_errors(answer)


answer_other_methods(router)
