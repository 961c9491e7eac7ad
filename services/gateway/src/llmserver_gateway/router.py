"""Thin routes of the public API; the logic is in service.py and relay.py."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from llmserver_common.errors import APIError
from llmserver_common.openai_api import EVENT_STREAM
from llmserver_common.openapi import error_responses, json_body
from llmserver_common.routing import answer_other_methods
from llmserver_gateway.bodies import check_max_tokens, parse_json_object, read_body, validate
from llmserver_gateway.forwarding import UpstreamErrorAnswer, upstream_error_response
from llmserver_gateway.relay import StreamRelay
from llmserver_gateway.replicas import Replica
from llmserver_gateway.retrieval import Retrieval, inject_context, last_user_message
from llmserver_gateway.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    HealthResponse,
    ModelEntry,
    ModelList,
    UpstreamHealth,
)
from llmserver_gateway.service import GatewayService

logger = logging.getLogger(__name__)

router = APIRouter()


class ClientGone(Exception):
    """The client disconnected before the answer was ready; nobody is left to answer."""


_LOCALDOCS_HEADER = "X-LocalDocs-Status"


async def get_service(request: Request) -> GatewayService:
    # async: a plain def dependency would cost a thread-pool hop on every request
    service: GatewayService = request.app.state.service
    return service


ServiceDep = Annotated[GatewayService, Depends(get_service)]


async def _json_body(request: Request, service: GatewayService) -> dict[str, Any]:
    return parse_json_object(await read_body(request, service.settings.max_body_bytes))


# -- models ------------------------------------------------------------------------------------


@router.get(
    "/v1/models",
    response_model=ModelList,
    tags=["models"],
    responses=error_responses(401, 502, 503, 504),
)
async def list_models(service: ServiceDep) -> JSONResponse:
    models = await service.listed_models()
    # A ready response: FastAPI would otherwise validate it again against response_model.
    return JSONResponse(
        {"object": "list", "data": [service.public_entry(entry) for entry in models]}
    )


@router.get(
    "/v1/models/{name:path}",
    response_model=ModelEntry,
    tags=["models"],
    responses=error_responses(401, 404, 502, 503, 504),
)
async def get_model(name: str, service: ServiceDep) -> JSONResponse:
    entry = await service.find_model(name)
    if entry is None:
        await service.resolve_any_model(name)  # raises the 404 naming the installed models
        raise AssertionError("unreachable")
    return JSONResponse(service.public_entry(entry))


# -- generation --------------------------------------------------------------------------------


# The request models of the routes that read their body raw, for the OpenAPI components (app.py).
BODY_MODELS: list[type[BaseModel]] = [ChatCompletionRequest, CompletionRequest, EmbeddingRequest]

# Errors of every generation route: bad request, unknown model, body too large, queue full,
# inference unreadable, down or slow.
_GENERATION_ERRORS = (400, 401, 404, 413, 429, 502, 503, 504)


def _generation(answer: type[BaseModel], body: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI of a generation route: JSON, or Server-Sent Events with stream: true."""
    ok = {
        "model": answer,
        "description": "The answer; with stream: true an event stream of chunks, then [DONE].",
        "content": EVENT_STREAM,
    }
    return {
        "responses": {200: ok, **error_responses(*_GENERATION_ERRORS)},
        "openapi_extra": json_body(body),
    }


@router.post(
    "/v1/chat/completions",
    tags=["generation"],
    **_generation(ChatCompletion, ChatCompletionRequest),
)
async def chat_completions(request: Request, service: ServiceDep) -> Response:
    data = await _json_body(request, service)
    parsed = validate(ChatCompletionRequest, data)
    check_max_tokens(data, service.settings.max_tokens_cap)
    data["model"] = await service.resolve_generation_model(parsed.model)
    data.pop("localdocs", None)  # ours, not inference's

    messages: list[dict[str, Any]] = data["messages"]
    found = last_user_message(messages)
    try:
        retrieval = await service.retrieve(parsed.localdocs, found[1] if found else None)
    except UpstreamErrorAnswer as answer:
        return answer.response
    if retrieval.references and found is not None:
        inject_context(service, messages, found[0], retrieval.references)
    headers = {_LOCALDOCS_HEADER: retrieval.status} if retrieval.status else {}
    body = json.dumps(data).encode()

    if parsed.stream:
        return await _stream(service, "/v1/chat/completions", body, retrieval, headers, True)
    try:
        content = await _generate(request, service, "/v1/chat/completions", body)
    except UpstreamErrorAnswer as answer:
        answer.response.headers.update(headers)
        return answer.response
    try:
        result = json.loads(content)
    except ValueError:
        raise APIError(502, "The inference service sent an unreadable answer.") from None
    for choice in result.get("choices") or []:
        if isinstance(choice, dict):
            choice["references"] = retrieval.references
    _count_tokens(service, result)
    return JSONResponse(result, headers=headers)


@router.post("/v1/completions", tags=["generation"], **_generation(Completion, CompletionRequest))
async def completions(request: Request, service: ServiceDep) -> Response:
    data = await _json_body(request, service)
    parsed = validate(CompletionRequest, data)
    check_max_tokens(data, service.settings.max_tokens_cap)
    data["model"] = await service.resolve_generation_model(parsed.model)
    body = json.dumps(data).encode()
    if parsed.stream:
        return await _stream(service, "/v1/completions", body, Retrieval(), {}, False)
    try:
        content = await _generate(request, service, "/v1/completions", body)
    except UpstreamErrorAnswer as answer:
        return answer.response
    try:
        _count_tokens(service, json.loads(content))
    except ValueError:
        pass
    return Response(content, media_type="application/json")


@router.post(
    "/v1/embeddings",
    tags=["embeddings"],
    responses={200: {"model": EmbeddingList}, **error_responses(*_GENERATION_ERRORS)},
    openapi_extra=json_body(EmbeddingRequest),
)
async def embeddings(request: Request, service: ServiceDep) -> Response:
    data = await _json_body(request, service)
    parsed = validate(EmbeddingRequest, data)
    if parsed.model:
        data["model"] = await service.resolve_any_model(parsed.model)
    else:
        data.pop("model", None)  # inference picks its default embedding model
    try:
        content = await _generate(request, service, "/v1/embeddings", json.dumps(data).encode())
    except UpstreamErrorAnswer as answer:
        return answer.response
    return Response(content, media_type="application/json")


async def _generate(request: Request, service: GatewayService, path: str, body: bytes) -> bytes:
    """A non-streamed inference call that is abandoned if the client goes away meanwhile.

    Abandoning closes the upstream connection, which lets inference drop the generation instead
    of computing an answer nobody will read.
    """
    this_task = asyncio.current_task()
    assert this_task is not None
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()
        this_task.cancel()

    # A plain asyncio task, not a task group: cheaper, and this runs on every request.
    watcher = asyncio.create_task(watch_disconnect())
    try:
        _, content = await service.call_inference("POST", path, body)
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
        logger.info("client disconnected; abandoned the upstream request")
        raise ClientGone() from None
    finally:
        watcher.cancel()
    return content


async def _stream(
    service: GatewayService,
    path: str,
    body: bytes,
    retrieval: Retrieval,
    headers: dict[str, str],
    inject_references: bool,
) -> Response:
    upstream, replica = await service.open_inference("POST", path, body)
    if upstream.status_code != 200:
        # An error before the stream started is an ordinary HTTP error, as OpenAI does.
        try:
            content = await upstream.aread()
        except Exception:
            content = b""
        finally:
            await upstream.aclose()
            service.release(replica)
        response = upstream_error_response(upstream, content, "inference")
        response.headers.update(headers)
        return response
    model = json.loads(body).get("model", "")

    def on_close(replica: Replica = replica) -> None:
        service.release(replica)

    def on_tokens(count: int) -> None:
        service.metrics.count_tokens(str(model), count)

    return StreamRelay(
        upstream,
        references=retrieval.references,
        inject_references=inject_references,
        on_close=on_close,
        on_tokens=on_tokens,
        headers=headers,
    )


def _count_tokens(service: GatewayService, result: Any) -> None:
    if not isinstance(result, dict):
        return
    usage = result.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        service.metrics.count_tokens(str(result.get("model", "")), usage["completion_tokens"])


# -- operations --------------------------------------------------------------------------------


@router.get(
    "/health",
    response_model=HealthResponse,
    tags=["operations"],
    responses={
        503: {
            "model": HealthResponse,
            "description": "No inference replica is serving; the body says which is down.",
        }
    },
)
async def health(service: ServiceDep) -> JSONResponse:
    settings = service.settings
    localdocs_state = "down"

    async def check_localdocs() -> None:
        nonlocal localdocs_state
        try:
            response = await service.client.get(
                f"{settings.localdocs_url}/health", timeout=settings.health_timeout_s
            )
        except Exception:
            return
        localdocs_state = {200: "up", 503: "loading"}.get(response.status_code, "down")

    await asyncio.gather(
        service.pool.check(service.client, settings.health_timeout_s), check_localdocs()
    )
    replicas = [
        UpstreamHealth(name=r.name, state=r.state, in_flight=r.in_flight)
        for r in service.pool.replicas
    ]
    for replica in service.pool.replicas:
        service.metrics.replica_up.labels(replica.name).set(
            {"up": 1.0, "loading": 0.5, "down": 0.0}[replica.state]
        )
    serving = service.pool.any_serving()
    if not serving:
        status = "unavailable"
    elif localdocs_state != "up":
        status = "degraded"  # chat still answers, without LocalDocs
    else:
        status = "ok"
    body = HealthResponse(
        status=status,
        inference=replicas,
        localdocs=UpstreamHealth(name="localdocs", state=localdocs_state),
    )
    headers = {} if serving else {"Retry-After": str(settings.retry_after_s)}
    return JSONResponse(body.model_dump(), status_code=200 if serving else 503, headers=headers)


@router.get(
    "/metrics",
    tags=["operations"],
    # Prometheus text, not JSON: say so in the OpenAPI document too.
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401),
    },
)
async def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
