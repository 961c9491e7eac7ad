"""Stored responses, for `previous_response_id` and GET/DELETE /v1/responses/{id}: in memory
(lost when the service restarts), each kept for a bounded time, the oldest dropped past a
bounded count. With a response, the conversation's chat messages up to and including its
answer, which a follow-up puts before its own input."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from llmserver_common.errors import APIError


@dataclass
class StoredResponse:
    response: dict[str, Any]
    # The chat messages (no system message: instructions are not carried over, as at OpenAI).
    conversation: list[dict[str, Any]]
    expires_at: float


class ResponseStore:
    def __init__(self, ttl_s: float, max_stored: int) -> None:
        self.ttl_s = ttl_s
        self.max_stored = max_stored
        self._kept: OrderedDict[str, StoredResponse] = OrderedDict()

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for response_id in [k for k, v in self._kept.items() if v.expires_at <= now]:
            del self._kept[response_id]

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        self._drop_expired()
        expires_at = time.monotonic() + self.ttl_s
        self._kept[response["id"]] = StoredResponse(response, conversation, expires_at)
        while len(self._kept) > self.max_stored:
            self._kept.popitem(last=False)

    def get(self, response_id: str, param: str | None = None) -> StoredResponse:
        """The stored response, or a 404 naming `param` (the field that named it, if any)."""
        self._drop_expired()
        kept = self._kept.get(response_id)
        if kept is None:
            raise APIError(
                404,
                f"No response with id '{response_id}' is stored (unknown, expired or deleted).",
                param=param,
                code="response_not_found",
            )
        return kept

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        del self._kept[response_id]
