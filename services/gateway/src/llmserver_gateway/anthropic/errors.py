"""Anthropic's error envelope for /v1/messages: `{"type": "error", "error": {type, message}}`.

The gateway's errors (APIError) and inference's error answers (the OpenAI envelope) are mapped
here, keeping their status and Retry-After; the OpenAI routes keep the OpenAI envelope.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse, Response

from llmserver_common.errors import APIError
from llmserver_common.openapi import error_responses

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def from_api_error(error: APIError) -> Response:
    return error_response(error.status_code, error.message, error.headers)


def from_openai_response(response: Response) -> Response:
    """An upstream error answer (the OpenAI envelope) in Anthropic's envelope."""
    message = f"The request failed (HTTP {response.status_code})."
    try:
        data = json.loads(bytes(response.body))
        message = data["error"]["message"] or message
    except (ValueError, KeyError, TypeError):
        pass
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    return error_response(response.status_code, message, headers)


def documented_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these statuses (as error_responses), in Anthropic's envelope."""
    responses = error_responses(*statuses)
    for response in responses.values():
        response["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/AnthropicErrorResponse"}}
        }
    return responses
