"""What OpenAI's Files and Vector Stores objects share here: ids, timestamps, the Redis keys'
prefix, cursor pages (`after`, `before`, `limit`, `order`), key-value maps (`metadata`,
`attributes`) and the 404 OpenAI answers for an unknown id."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from redis.exceptions import RedisError

from llmserver_common.errors import APIError, invalid_request
from llmserver_common.openai_retrieval_api import Order
from llmserver_localdocs.upstreams import unavailable

REDIS_PREFIX = "llmserver:openai"

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """`file-…`, `vs_…`, `vsfb_…`: OpenAI's prefixes, 24 hex digits (valid collection names)."""
    return f"{prefix}{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def sequence_number() -> int:
    """A sort key in creation order (microseconds), for lists with ties in `created_at`."""
    return time.time_ns() // 1000


def not_found(kind: str, object_id: str, param: str) -> APIError:
    return APIError(
        404,
        f"No {kind} found with id '{object_id}'.",
        type="invalid_request_error",
        param=param,
        code=None,
    )


async def redis_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except (RedisError, OSError) as exc:
        raise unavailable("Redis") from exc


def cursor_page(
    items: Sequence[dict[str, Any]],
    *,
    limit: int,
    order: Order,
    after: str | None,
    before: str | None,
) -> dict[str, Any]:
    """One page of `items` (given oldest first, each with an `id`), as OpenAI lists: ordered by
    creation, starting after the `after` id and ending before the `before` id (404 naming the
    cursor when it is no id of the list: the request is well formed, the object is not there)."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    start, stop = 0, len(ordered)
    if after is not None:
        if after not in ids:
            raise not_found("object in this list", after, "after")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise not_found("object in this list", before, "before")
        stop = ids.index(before)
    window = ordered[start:stop]
    if before is not None and after is None:
        page = window[-limit:]  # the page just before the cursor
        has_more = len(window) > limit
    else:
        page = window[:limit]
        has_more = len(window) > limit
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": has_more,
    }


def check_key_values(
    values: dict[str, Any] | None, param: str, *, scalars: tuple[type, ...]
) -> dict[str, Any]:
    """OpenAI's limits on `metadata` and `attributes`: at most 16 keys of at most 64 characters,
    strings of at most 512; `scalars` are the value types allowed."""
    if values is None:
        return {}
    if len(values) > 16:
        raise invalid_request(f"'{param}' has at most 16 keys.", param=param)
    for key, value in values.items():
        if not key or len(key) > 64:
            raise invalid_request(f"Keys of '{param}' are 1 to 64 characters.", param=param)
        if isinstance(value, bool) and bool not in scalars or not isinstance(value, scalars):
            kinds = ", ".join(kind.__name__ for kind in scalars)
            raise invalid_request(
                f"Values of '{param}' are of types {kinds}.", param=f"{param}.{key}"
            )
        if isinstance(value, str) and len(value) > 512:
            raise invalid_request(
                f"Values of '{param}' are at most 512 characters.", param=f"{param}.{key}"
            )
    return dict(values)
