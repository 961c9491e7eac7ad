"""A Responses request with `stream: true`: OpenAI's server-sent events around the inference
service's streamed chat completion.

The file search is done and the upstream stream opened before the answer starts, so their
errors are plain HTTP errors; a failure after that ends the stream with `response.failed`.
Events: response.created, response.in_progress, the file_search_call item (added,
in_progress, searching, completed, done), the reasoning item (summary part and text deltas),
the message item (added, content part added, one output_text.delta per upstream chunk,
annotation.added per citation, output_text.done, content part done, item done), a
function_call item per call (added, function_call_arguments.delta / .done, item done), then
response.completed (or response.incomplete).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from llmserver_common.errors import APIError
from llmserver_localdocs.responses.answer import Prepared
from llmserver_localdocs.responses.service import upstream_error
from llmserver_localdocs.responses.tools import call_items
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


class _Answer:
    """The items of the streamed answer, opened as the upstream deltas come: the reasoning
    (chat's delta.reasoning_content), the message (delta.content), one function call per
    delta.tool_calls index; each closed with its done events at the end (the reasoning as
    soon as the answer proper starts)."""

    def __init__(self, prepared: Prepared, event: _Events, first_index: int) -> None:
        self.prepared = prepared
        self.event = event
        self.next_index = first_index
        self.reasoning = ""
        self.reasoning_index: int | None = None
        self.reasoning_open = False
        self.text = ""
        self.message_index: int | None = None
        self.calls: dict[int, dict[str, Any]] = {}
        self.call_index: dict[int, int] = {}

    def _take_index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    def _message_where(self) -> dict[str, Any]:
        return {
            "output_index": self.message_index,
            "item_id": self.prepared.message_id,
            "content_index": 0,
        }

    def _reasoning_where(self) -> dict[str, Any]:
        return {
            "output_index": self.reasoning_index,
            "item_id": self.prepared.reasoning_id,
            "summary_index": 0,
        }

    def on_reasoning(self, delta: str) -> Iterator[bytes]:
        if self.reasoning_index is None:
            self.reasoning_index = self._take_index()
            self.reasoning_open = True
            yield self.event(
                "response.output_item.added",
                output_index=self.reasoning_index,
                item={**self.prepared.reasoning_item("", "in_progress"), "summary": []},
            )
            yield self.event(
                "response.reasoning_summary_part.added",
                **self._reasoning_where(),
                part={"type": "summary_text", "text": ""},
            )
        if not self.reasoning_open:
            return  # reasoning after the answer started: kept in the final item only
        self.reasoning += delta
        yield self.event(
            "response.reasoning_summary_text.delta", **self._reasoning_where(), delta=delta
        )

    def close_reasoning(self) -> Iterator[bytes]:
        if not self.reasoning_open:
            return
        self.reasoning_open = False
        part = {"type": "summary_text", "text": self.reasoning}
        yield self.event(
            "response.reasoning_summary_text.done", **self._reasoning_where(), text=self.reasoning
        )
        yield self.event(
            "response.reasoning_summary_part.done", **self._reasoning_where(), part=part
        )
        yield self.event(
            "response.output_item.done",
            output_index=self.reasoning_index,
            item=self.prepared.reasoning_item(self.reasoning),
        )

    def open_message(self) -> Iterator[bytes]:
        if self.message_index is not None:
            return
        yield from self.close_reasoning()
        self.message_index = self._take_index()
        yield self.event(
            "response.output_item.added",
            output_index=self.message_index,
            item=self.prepared.message_item(None, "in_progress"),
        )
        yield self.event(
            "response.content_part.added",
            **self._message_where(),
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        )

    def on_text(self, delta: str) -> Iterator[bytes]:
        yield from self.open_message()
        self.text += delta
        yield self.event(
            "response.output_text.delta", **self._message_where(), delta=delta, logprobs=[]
        )

    def on_tool_call(self, piece: dict[str, Any]) -> Iterator[bytes]:
        number = int(piece.get("index") or 0)
        function = piece.get("function") or {}
        if number not in self.calls:
            yield from self.close_reasoning()
            self.call_index[number] = self._take_index()
            call = {"id": piece.get("id"), "function": {"name": function.get("name") or ""}}
            self.calls[number] = call_items([call], "in_progress")[0]
            yield self.event(
                "response.output_item.added",
                output_index=self.call_index[number],
                item=self.calls[number],
            )
        item = self.calls[number]
        arguments = function.get("arguments") or ""
        if arguments:
            item["arguments"] += arguments
            yield self.event(
                "response.function_call_arguments.delta",
                output_index=self.call_index[number],
                item_id=item["id"],
                delta=arguments,
            )

    def close(self, status: str) -> Iterator[bytes]:
        """The done events of the items still open (an empty message when nothing came)."""
        yield from self.close_reasoning()
        if self.message_index is None and not self.calls:
            yield from self.open_message()
        if self.message_index is not None:
            where = self._message_where()
            part = self.prepared.text_part(self.text)
            for number, annotation in enumerate(part["annotations"]):
                yield self.event(
                    "response.output_text.annotation.added",
                    **where,
                    annotation_index=number,
                    annotation=annotation,
                )
            yield self.event("response.output_text.done", **where, text=self.text, logprobs=[])
            yield self.event("response.content_part.done", **where, part=part)
            yield self.event(
                "response.output_item.done",
                output_index=self.message_index,
                item=self.prepared.message_item(self.text, status),
            )
        for number, item in self.calls.items():
            item["status"] = status
            yield self.event(
                "response.function_call_arguments.done",
                output_index=self.call_index[number],
                item_id=item["id"],
                name=item["name"],
                arguments=item["arguments"],
            )
            yield self.event(
                "response.output_item.done", output_index=self.call_index[number], item=item
            )

    def partial_output(self) -> list[dict[str, Any]]:
        output = []
        if self.reasoning:
            output.append(self.prepared.reasoning_item(self.reasoning, "incomplete"))
        if self.message_index is not None:
            output.append(self.prepared.message_item(self.text, "incomplete"))
        output.extend({**item, "status": "incomplete"} for item in self.calls.values())
        return output


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
    answer = _Answer(prepared, event, len(output))
    if not prepared.chat_payload(stream=True).get("tools"):
        # Without function tools the message opens at once, as before any text.
        for piece in answer.open_message():
            yield piece
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
                delta = choice.get("delta") or {}
                pieces: list[bytes] = []
                if delta.get("reasoning_content"):
                    pieces.extend(answer.on_reasoning(delta["reasoning_content"]))
                if delta.get("content"):
                    pieces.extend(answer.on_text(delta["content"]))
                for call in delta.get("tool_calls") or []:
                    pieces.extend(answer.on_tool_call(call))
                for piece in pieces:
                    yield piece
                finish_reason = choice.get("finish_reason") or finish_reason
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        logger.warning("streamed response failed: %s", exc.__class__.__name__)
        error = {"code": "server_error", "message": f"The answer broke off: {exc}"}
        failed = [*output, *answer.partial_output()]
        yield event(
            "response.failed",
            response=prepared.response(status="failed", output=failed, error=error),
        )
        return
    finally:
        await upstream.aclose()
    status = "incomplete" if finish_reason == "length" else "completed"
    for piece in answer.close(status):
        yield piece
    final = prepared.final(
        answer.text,
        finish_reason != "length",
        model,
        usage,
        calls=list(answer.calls.values()),
        reasoning=answer.reasoning or None,
    )
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    yield event(kind, response=final)
