"""The one OpenAI error envelope, and the one function that maps exceptions to it.

Every service installs these handlers, so a client never sees a bare 500, an HTML page or a
stack trace: always `{"error": {"message", "type", "param", "code"}}` with a fitting status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# status -> OpenAI error type, for errors raised without an explicit type.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, for a person to read.")
    type: str = Field(description="OpenAI's error type, e.g. invalid_request_error.")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str | None = Field(description="A machine-readable reason, e.g. model_not_found.")


class ErrorResponse(BaseModel):
    """The one error envelope: every error of every service has this body."""

    error: ErrorDetail


class APIError(Exception):
    """An error that reaches the client as the OpenAI envelope."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type or _TYPE_BY_STATUS.get(status_code, "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(name: str, installed: list[str]) -> APIError:
    listed = ", ".join(installed) if installed else "none"
    return APIError(
        404,
        f"The model '{name}' does not exist. Installed models: {listed}.",
        param="model",
        code="model_not_found",
    )


def context_length_exceeded(prompt_tokens: int, context_length: int) -> APIError:
    return APIError(
        400,
        f"This model's maximum context length is {context_length} tokens, "
        f"but the prompt has {prompt_tokens} tokens.",
        param="messages",
        code="context_length_exceeded",
    )


def param_path(loc: tuple[int | str, ...], data: Any) -> str | None:
    """The dotted path of the field at fault ("messages.0.content"), read against the data.

    Pydantic's locations also name union members and tags ("user", "constrained-str"); only the
    keys and indexes that lead through the request itself are the client's business, plus the
    last key when it is a missing field.
    """
    parts: list[str] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif not (index == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str)):
            continue
        parts.append(str(part))
    return ".".join(parts) or None


def validation_failure(errors: Sequence[Any], data: Any) -> APIError:
    """The 400 for a request that failed validation, naming the field at fault.

    Of several errors the deepest wins: a union reports one per member, and the member the
    client meant (a list of strings with an empty one) is the one that got furthest.
    """
    if not errors:
        return invalid_request("Invalid request.")
    found: list[tuple[str | None, Any]] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] in ("path", "query", "header", "cookie"):
            param: str | None = ".".join(str(part) for part in loc[1:]) or None
        else:
            param = param_path(loc[1:] if loc[:1] == ("body",) else loc, data)
        found.append((param, error))
    param, first = max(found, key=lambda item: len((item[0] or "").split(".")))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    kind = first.get("type")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        # A discriminated union (a message's role): the fault is in its tag field.
        tag = str((first.get("ctx") or {}).get("discriminator", "")).strip("'")
        if tag.isidentifier():
            param = f"{param}.{tag}" if param else tag
            kind = "missing" if kind == "union_tag_not_found" else kind
    if kind == "missing" and param:
        return invalid_request(f"Missing required parameter: '{param}'.", param)
    if param:
        return invalid_request(f"Invalid value for '{param}': {message}.", param)
    return invalid_request(f"Invalid request: {message}.")


def to_error_response(exc: Exception) -> JSONResponse:
    """Map any exception to the OpenAI envelope (the single place that does so)."""
    if isinstance(exc, APIError):
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        # FastAPI answers 422; OpenAI clients expect 400 invalid_request_error.
        return to_error_response(validation_failure(exc.errors(), exc.body))
    if isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        if status == 404:
            message = "Not found."
        elif status == 405:
            message = "Method not allowed."
        else:
            message = str(exc.detail) if exc.detail else "Request failed."
        headers = dict(exc.headers or {})
        return JSONResponse(
            error_body(message, _TYPE_BY_STATUS.get(status, "invalid_request_error")),
            status_code=status,
            headers=headers,
        )
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("The server had an internal error.", "internal_error"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return to_error_response(exc)

    app.add_exception_handler(APIError, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(StarletteHTTPException, handle)
    app.add_exception_handler(Exception, handle)
