"""OpenAI's Files, Vector Stores and Responses API (/v1/files*, /v1/vector_stores*,
/v1/responses), answered by the localdocs service: forwarded as they come, the body streamed
through (an upload may be far larger than the JSON body limit; localdocs holds the upload
limit and says 413 itself).

Not in /openapi.json yet: the request and answer models live in the localdocs service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from llmserver_common.errors import invalid_request
from llmserver_gateway.service import GatewayService

logger = logging.getLogger(__name__)

router = APIRouter()

# Request headers localdocs needs (the multipart boundary is in the Content-Type), and answer
# headers the client needs (a download's name, the poll helpers' interval, retry hints).
_REQUEST_HEADERS = ("content-type", "content-length")
SMALL_BODY_BYTES = 256 * 1024
_ANSWER_HEADERS = ("content-type", "content-disposition", "openai-poll-after-ms", "retry-after")


async def forward(request: Request) -> Response:
    service: GatewayService = request.app.state.service
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    url = service.settings.localdocs_url + raw_path.decode("latin-1")
    if request.url.query:
        url += f"?{request.url.query}"
    headers = {k: request.headers[k] for k in _REQUEST_HEADERS if k in request.headers}
    # Small bodies (JSON requests) are read at once; uploads stream through.
    declared = request.headers.get("content-length", "")
    small = declared.isdigit() and int(declared) <= SMALL_BODY_BYTES
    body: Any = None
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body() if small else request.stream()
    timeout = service.localdocs_timeout
    if request.url.path.startswith("/v1/responses"):
        # A response waits on a generation: inference's deadline, not the management one.
        settings = service.settings
        timeout = httpx.Timeout(settings.inference_timeout_s, connect=settings.connect_timeout_s)
    try:
        outgoing = service.client.build_request(
            request.method, url, headers=headers, content=body, timeout=timeout
        )
    except httpx.InvalidURL:
        raise invalid_request("The request path or query is not a valid URL.") from None
    try:
        upstream = await service.client.send(outgoing, stream=True)
        passed = {k: upstream.headers[k] for k in _ANSWER_HEADERS if k in upstream.headers}
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            # A streamed Responses answer: relayed as it comes.
            return StreamingResponse(
                _relay(upstream), status_code=upstream.status_code, headers=passed
            )
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
    except httpx.TimeoutException:
        raise service.timed_out("localdocs") from None
    except httpx.HTTPError as exc:
        logger.debug("localdocs request failed: %s", type(exc).__name__)
        raise service.unavailable("localdocs") from None
    return Response(content, status_code=upstream.status_code, headers=passed)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for block in upstream.aiter_raw():
            yield block
    except httpx.HTTPError as exc:
        # The events end here; the client sees the stream close without response.completed.
        logger.warning("localdocs stream broke off: %s", type(exc).__name__)
    finally:
        await upstream.aclose()


for _prefix in ("/v1/files", "/v1/vector_stores", "/v1/responses"):
    for _path in (_prefix, _prefix + "/{path:path}"):
        router.add_api_route(
            _path, forward, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
