"""A Responses request with `stream: true`: OpenAI's server-sent events around the inference
service's streamed chat completion.

The file search is done and the upstream stream opened before the answer starts, so their
errors are plain HTTP errors; a failure after that ends the stream with `response.failed`.
Events: response.created, response.in_progress, the file_search_call item (added,
in_progress, searching, completed, done), the message item (added, content part added, one
output_text.delta per upstream chunk, annotation.added per citation, output_text.done,
content part done, item done), then response.completed (or response.incomplete).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from llmserver_common.errors import APIError
from llmserver_localdocs.responses.service import Prepared, upstream_error
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.upstreams import unavailable

logger = logging.getLogger(__name__)


async def open_chat_stream(localdocs: LocalDocsService, prepared: Prepared) -> httpx.Response:
    """The inference service's streamed answer, its status checked, its body unread."""
    request = localdocs.http.build_request(
        "POST",
        "/v1/chat/completions",
        json=prepared.chat_payload(stream=True),
        timeout=localdocs.settings.responses_timeout_s,
    )
    try:
        upstream = await localdocs.http.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise APIError(504, "The inference service did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise unavailable("The inference service") from exc
    if upstream.status_code != 200:
        await upstream.aread()
        await upstream.aclose()
        raise upstream_error(upstream)
    return upstream


class _Events:
    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _chunks(upstream: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in upstream.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


async def events(prepared: Prepared, upstream: httpx.Response) -> AsyncIterator[bytes]:
    event = _Events()
    yield event("response.created", response=prepared.response(status="in_progress", output=[]))
    yield event("response.in_progress", response=prepared.response(status="in_progress", output=[]))
    output: list[dict[str, Any]] = []
    if prepared.searching:
        where = {"output_index": 0, "item_id": prepared.search_id}
        yield event(
            "response.output_item.added", output_index=0, item=prepared.search_item("in_progress")
        )
        for step in ("in_progress", "searching", "completed"):
            yield event(f"response.file_search_call.{step}", **where)
        output.append(prepared.search_item())
        yield event("response.output_item.done", output_index=0, item=output[0])
    index = len(output)
    where = {"output_index": index, "item_id": prepared.message_id, "content_index": 0}
    yield event(
        "response.output_item.added",
        output_index=index,
        item=prepared.message_item(None, "in_progress"),
    )
    yield event(
        "response.content_part.added",
        **where,
        part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
    )
    text = ""
    finish_reason = None
    model = None
    usage: dict[str, Any] | None = None
    try:
        async for chunk in _chunks(upstream):
            if "error" in chunk:
                raise RuntimeError(str(chunk["error"].get("message") or "inference failed"))
            model = chunk.get("model") or model
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    text += delta
                    yield event("response.output_text.delta", **where, delta=delta, logprobs=[])
                finish_reason = choice.get("finish_reason") or finish_reason
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        logger.warning("streamed response failed: %s", exc.__class__.__name__)
        error = {"code": "server_error", "message": f"The answer broke off: {exc}"}
        failed = prepared.message_item(text, "incomplete")
        yield event(
            "response.failed",
            response=prepared.response(status="failed", output=[*output, failed], error=error),
        )
        return
    finally:
        await upstream.aclose()
    part = prepared.text_part(text)
    for number, annotation in enumerate(part["annotations"]):
        yield event(
            "response.output_text.annotation.added",
            **where,
            annotation_index=number,
            annotation=annotation,
        )
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part=part)
    final = prepared.final(text, finish_reason != "length", model, usage)
    yield event("response.output_item.done", output_index=index, item=final["output"][-1])
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    yield event(kind, response=final)
