"""Inference's OpenAI chat stream as Anthropic's Messages events: message_start, ping, per
block content_block_start / content_block_delta (text_delta, thinking_delta, input_json_delta) /
content_block_stop, then message_delta (stop_reason, usage) and message_stop."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from llmserver_gateway.anthropic.errors import error_body
from llmserver_gateway.anthropic.translate import message_id, stop_reason
from llmserver_gateway.upstream_client import HTTPX_ERRORS

logger = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]


def encode(event: Event) -> bytes:
    name, data = event
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class MessageEvents:
    """Turns chat chunks (parsed) into Anthropic events, one block open at a time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1  # of the open block
        self.open_kind: str | None = None
        self.finish_reason: Any = None
        self.usage: dict[str, Any] = {}
        self.output_chunks = 0

    def start(self) -> list[Event]:
        message = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), _ping()]

    def _open(self, kind: str, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self.index += 1
        self.open_kind = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return [*events, ("content_block_start", start)]

    def _close(self) -> list[Event]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self.index, "delta": delta},
        )

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return []
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        events: list[Event] = []
        if delta.get("reasoning_content"):
            self.output_chunks += 1
            if self.open_kind != "thinking":
                events += self._open("thinking", {"type": "thinking", "thinking": ""})
            events.append(
                self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]})
            )
        if delta.get("content"):
            self.output_chunks += 1
            if self.open_kind != "text":
                events += self._open("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if call.get("id") or self.open_kind != "tool_use":
                block = {
                    "type": "tool_use",
                    "id": call.get("id") or message_id().replace("msg_", "toolu_"),
                    "name": function.get("name") or "",
                    "input": {},
                }
                events += self._open("tool_use", block)
            if function.get("arguments"):
                self.output_chunks += 1
                partial = {"type": "input_json_delta", "partial_json": function["arguments"]}
                events.append(self._delta(partial))
        return events

    def finish(self) -> list[Event]:
        usage = {
            "input_tokens": self.usage.get("prompt_tokens", 0),
            "output_tokens": self.usage.get("completion_tokens", self.output_chunks),
        }
        delta = {"stop_reason": stop_reason(self.finish_reason), "stop_sequence": None}
        return [
            *self._close(),
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]


def _ping() -> Event:
    return ("ping", {"type": "ping"})


def _error(status: int, message: str) -> Event:
    return ("error", error_body(status, message))


async def anthropic_events(
    upstream: httpx.Response, model: str, on_done: Callable[[int], None]
) -> AsyncIterator[bytes]:
    """The Anthropic event stream of an open upstream chat stream; closes it when done.

    `on_done(output_tokens)` runs at the end however the stream ends (the replica's release).
    """
    events = MessageEvents(model)
    for event in events.start():
        yield encode(event)
    try:
        async for line in upstream.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("error"), dict):
                message = str(chunk["error"].get("message") or "The generation failed.")
                yield encode(_error(500, message))
                return
            for event in events.feed(chunk):
                yield encode(event)
        for event in events.finish():
            yield encode(event)
    except httpx.TimeoutException:
        yield encode(_error(504, "The inference service did not answer in time."))
    except HTTPX_ERRORS as exc:
        logger.warning("inference stream broke off: %s", type(exc).__name__)
        yield encode(_error(502, "The inference stream broke off."))
    finally:
        await upstream.aclose()
        on_done(events.usage.get("completion_tokens", events.output_chunks))
