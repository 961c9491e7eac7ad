"""Request bodies of the public API: read within the size limit, parsed as JSON whatever the
Content-Type says, validated with the route's model (a 400 naming the field)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from llmserver_common.errors import APIError, invalid_request, validation_failure

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past `limit` bytes (checked while reading, not after)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"The request body is larger than the limit of {limit} bytes.")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """JSON whatever the Content-Type says: GPT4All's own curl example sends it form-encoded."""
    if not body.strip():
        raise invalid_request("The request body is empty; a JSON object is required.")
    try:
        data = json.loads(body)
    except RecursionError:
        # `[[[...]]]` nested past the interpreter's recursion limit.
        raise invalid_request("error parsing request JSON: nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and an integer past Python's digit limit.
        if isinstance(exc, json.JSONDecodeError):
            detail = exc.msg
        elif isinstance(exc, UnicodeDecodeError):
            detail = "not UTF-8"
        else:
            detail = "a number is too long"
        raise invalid_request(f"error parsing request JSON: {detail}") from None
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.")
    return data


def validate(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate with pydantic; a failure is a 400 naming the field (never FastAPI's 422)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Located as FastAPI locates a body's fields: bare, a field named `query` (or `path`,
        # `header`, `cookie`) would be taken for a URL parameter and the 400 would name none.
        errors = [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise validation_failure(errors, data) from None


def check_max_tokens(data: dict[str, Any], cap: int) -> None:
    """A 400 for max_tokens / max_completion_tokens above the cap (types are checked already)."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise invalid_request(
                f"Invalid value for '{name}': at most {cap} tokens may be requested "
                "(GATEWAY_MAX_TOKENS_CAP).",
                name,
                code="max_tokens_too_large",
            )
