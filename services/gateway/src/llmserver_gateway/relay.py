"""Streaming pass-through: inference's SSE bytes go to the client as they arrive.

Only the first data event is touched (to carry `references`); everything after it is relayed
byte for byte. A client that disconnects closes the upstream response, which cancels the
generation on the inference side.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llmserver_common.errors import error_body
from llmserver_gateway.upstream_client import HTTPX_ERRORS

logger = logging.getLogger(__name__)

# SSE events end with a blank line; sse-starlette writes CRLF, others LF.
_EVENT_END = re.compile(rb"\r?\n\r?\n")
# Past this much buffered without a complete first event, stop looking and relay as is.
_FIRST_EVENT_LIMIT = 1 << 20


def add_references(event: bytes, references: list[dict[str, Any]] | None) -> bytes | None:
    """The event with `references` on every choice, or None when it is not a chunk event."""
    lines = event.splitlines()
    for position, line in enumerate(lines):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload.startswith(b"{"):
            return None
        try:
            chunk = json.loads(payload)
        except ValueError:
            return None
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not choices:
            return None
        for choice in choices:
            if isinstance(choice, dict):
                choice["references"] = references
        lines[position] = b"data: " + json.dumps(chunk, separators=(",", ":")).encode()
        return b"\n".join(lines)
    return None


def error_event(message: str, type_: str, code: str | None) -> bytes:
    body = json.dumps(error_body(message, type_, None, code))
    return f"data: {body}\n\ndata: [DONE]\n\n".encode()


class StreamRelay(Response):
    """An SSE response fed by an open upstream httpx response."""

    media_type = "text/event-stream"

    def __init__(
        self,
        upstream: httpx.Response,
        *,
        references: list[dict[str, Any]] | None,
        inject_references: bool,
        on_close: Callable[[], None],
        on_tokens: Callable[[int], None],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self.references = references
        self.inject_references = inject_references
        self.on_close = on_close
        self.on_tokens = on_tokens
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.init_headers(
            {
                "cache-control": "no-cache",
                # Tells nginx-style proxies in front of us not to buffer the stream either.
                "x-accel-buffering": "no",
                **(headers or {}),
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch_disconnect, receive, group.cancel_scope)
                await self._relay(send)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            self.on_close()

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                logger.info("client disconnected; cancelling the upstream generation")
                scope.cancel()
                return

    async def _relay(self, send: Send) -> None:
        pending = self.inject_references
        buffer = b""
        chunks = 0
        try:
            async for data in self.upstream.aiter_bytes():
                if pending:
                    buffer += data
                    data, buffer, pending = self._take_first_event(buffer)
                    if not data:
                        continue
                chunks += data.count(b"data:")
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if buffer:
                await send({"type": "http.response.body", "body": buffer, "more_body": True})
        except httpx.TimeoutException:
            await self._send_error(send, "The inference service did not answer in time.", "timeout")
        except HTTPX_ERRORS as exc:
            logger.warning("inference stream broke off: %s", type(exc).__name__)
            await self._send_error(send, "The inference stream broke off.", "upstream_error")
        finally:
            # Without a usage chunk each data event but the last two ([DONE], finish) is a token.
            self.on_tokens(max(chunks - 2, 0))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _take_first_event(self, buffer: bytes) -> tuple[bytes, bytes, bool]:
        """Split out complete events until the first chunk, which gets the references.

        Returns (bytes to send now, bytes still buffered, still looking).
        """
        out = b""
        while True:
            match = _EVENT_END.search(buffer)
            if match is None:
                if len(buffer) > _FIRST_EVENT_LIMIT:
                    return out + buffer, b"", False
                return out, buffer, True
            event, separator = buffer[: match.start()], match.group()
            buffer = buffer[match.end() :]
            changed = add_references(event, self.references)
            if changed is not None:
                return out + changed + separator + buffer, b"", False
            out += event + separator

    async def _send_error(self, send: Send, message: str, code: str) -> None:
        await send(
            {
                "type": "http.response.body",
                "body": error_event(message, "upstream_error", code),
                "more_body": True,
            }
        )
