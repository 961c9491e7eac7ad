"""LocalDocs retrieval for chat requests: the server-wide active collections (cached), the
search, and GPT4All's context prompt put into the last user message.

Mixed into GatewayService. LocalDocs being down or slow degrades a chat (no references, the
X-LocalDocs-Status header says so), never fails it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from llmserver_common.errors import APIError
from llmserver_gateway.forwarding import (
    UpstreamErrorAnswer,
    UpstreamForwarding,
    upstream_error_response,
)
from llmserver_gateway.schemas import LocalDocsOptions

logger = logging.getLogger(__name__)

# `localdocs` absent or true: the server-wide active collections, the default number of snippets.
_SERVER_WIDE = LocalDocsOptions()


@dataclass
class Retrieval:
    """What LocalDocs contributed to a chat request."""

    references: list[dict[str, Any]] | None = None
    # Value of the X-LocalDocs-Status header: "ok", "unavailable", or None when not attempted.
    status: str | None = None


class LocalDocsRetrieval(UpstreamForwarding):
    """GatewayService's LocalDocs part; its cache fields are set in GatewayService.__init__."""

    clock: Callable[[], float]
    localdocs_chat_timeout: httpx.Timeout
    _active: list[str]
    _active_error: APIError | None
    _active_expire: float
    _active_stale_until: float
    _active_version: int
    _active_refresh: asyncio.Task[None] | None
    _localdocs_degraded: bool

    def active_collections_changed(self) -> None:
        # Forget the cached server-wide default, stale copy included.
        self._active_expire = self._active_stale_until = 0.0
        self._active_version += 1

    def _cached_active(self) -> list[str] | None:
        """The cached server-wide active collections if they may be used now, else None.

        Cached briefly, failures too (no retry storm); None means _fetch_active must run first.

        For one more TTL after it expires, the cached answer is still used while a background
        lookup refreshes it: under steady traffic no chat waits for localdocs, and with no
        collections active a chat costs no localdocs call at all. A cached failure is raised.
        """
        now = self.clock()
        if now >= self._active_expire:
            if now >= self._active_stale_until:
                return None
            if self._active_refresh is None or self._active_refresh.done():
                self._active_refresh = asyncio.create_task(self._refresh_active())
        if self._active_error is not None:
            raise self._active_error
        return self._active

    async def _refresh_active(self) -> None:
        try:
            await self._fetch_active()
        except APIError:
            pass  # remembered by _fetch_active: chats answer without LocalDocs meanwhile
        except Exception:
            logger.exception("background refresh of the active collections failed")

    async def _fetch_active(self) -> list[str]:
        version = self._active_version
        collections: list[str] = []
        error: APIError | None = None
        try:
            response = await self.call_localdocs(
                "GET", "/v1/localdocs/active", timeout=self.localdocs_chat_timeout
            )
            if response.status_code != 200:
                raise self.unavailable("localdocs")
            try:
                collections = [str(c) for c in response.json().get("collections") or []]
            except (ValueError, AttributeError, TypeError):
                raise self.unavailable("localdocs") from None
        except APIError as exc:
            error = exc
            raise
        except (asyncio.CancelledError, Exception):
            # The chat's retrieval deadline passed (or something unforeseen): remember localdocs
            # as unavailable, not as "no active collections", for the cache's lifetime.
            error = self.unavailable("localdocs")
            raise
        finally:
            if version == self._active_version:
                ttl = self.settings.localdocs_active_cache_ttl_s
                self._active, self._active_error = collections, error
                self._active_expire = self.clock() + ttl
                self._active_stale_until = self._active_expire + ttl
        return collections

    async def retrieve(
        self, options: LocalDocsOptions | bool | None, query: str | None
    ) -> Retrieval:
        """Search LocalDocs for a chat request. Localdocs being down degrades, never fails."""
        if options is False or not query:
            return Retrieval()
        # true means the same as absent: the server-wide active collections.
        if not isinstance(options, LocalDocsOptions):
            options = _SERVER_WIDE
        collections = options.collections
        if collections is None:
            try:
                collections = self._cached_active()
            except APIError as exc:
                return self._without_localdocs(exc)
            if collections == []:
                return Retrieval()  # nothing active: no localdocs call, no deadline to arm
        k = options.k or self.settings.localdocs_k
        try:
            # One deadline for the whole retrieval (active collections + search), not per call.
            async with asyncio.timeout(self.settings.localdocs_chat_timeout_s):
                if collections is None:
                    collections = await self._fetch_active()
                if not collections:
                    return Retrieval()
                payload = {"query": query, "collections": collections, "k": k}
                response = await self.call_localdocs(
                    "POST",
                    "/v1/localdocs/search",
                    body=json.dumps(payload).encode(),
                    timeout=self.localdocs_chat_timeout,
                )
        except (APIError, TimeoutError) as exc:
            return self._without_localdocs(exc)
        if 400 <= response.status_code < 500:
            # The client's mistake (unknown collection, bad name): tell them, do not hide it.
            raise UpstreamErrorAnswer(
                upstream_error_response(response, response.content, "localdocs")
            )
        if response.status_code != 200:
            return Retrieval(status="unavailable")
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            return Retrieval(status="unavailable")
        if self._localdocs_degraded:
            logger.info("LocalDocs is answering again")
            self._localdocs_degraded = False
        references = [item for item in data if isinstance(item, dict)] if data else []
        return Retrieval(references=references or None, status="ok")

    def _without_localdocs(self, exc: APIError | TimeoutError) -> Retrieval:
        """The chat goes on without LocalDocs (its header says so); the change is logged once."""
        if isinstance(exc, TimeoutError):
            self.metrics.upstream_errors.labels("localdocs", "timeout").inc()
        if not self._localdocs_degraded:
            reason = exc if isinstance(exc, APIError) else "no answer within the chat deadline"
            logger.warning("LocalDocs unavailable for chat (%s); answering without it", reason)
        self._localdocs_degraded = True
        return Retrieval(status="unavailable")

    def context_prompt(self, references: list[dict[str, Any]], message: str) -> str:
        """GPT4All's LocalDocs prompt: "### Context:", one block per snippet, the message."""
        snippets = "\n\n".join(
            self.settings.localdocs_snippet_template.format(
                collection=ref.get("collection") or "",
                path=ref.get("path") or "",
                file=ref.get("file") or "",
                text=ref.get("text") or "",
                title=ref.get("title") or "",
                author=ref.get("author") or "",
                date=ref.get("date") or "",
                page=ref.get("page") if ref.get("page") is not None else "",
                score=ref.get("score") if ref.get("score") is not None else "",
                index=index,
            )
            for index, ref in enumerate(references, start=1)
        )
        return self.settings.localdocs_context_template.format(snippets=snippets, message=message)


def last_user_message(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """Index and text of the last user message (text parts joined), or None."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return index, content
            if isinstance(content, list):
                texts = [
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                ]
                return index, "\n".join(t for t in texts if isinstance(t, str))
            return None
    return None


def inject_context(
    service: LocalDocsRetrieval,
    messages: list[dict[str, Any]],
    index: int,
    references: list[dict[str, Any]],
) -> None:
    """Put the snippets into the last user message, in place (GPT4All does the same)."""
    message = dict(messages[index])
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = service.context_prompt(references, content)
    elif isinstance(content, list):
        # Content parts: the context goes in front as its own text part; images etc. stay.
        context = service.context_prompt(references, "").rstrip()
        message["content"] = [{"type": "text", "text": context}, *content]
    messages[index] = message
