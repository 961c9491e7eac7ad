"""The one OpenAI error envelope, and the one function that maps exceptions to it.

Every service installs these handlers, so a client never sees a bare 500, an HTML page or a
stack trace: always `{"error": {"message", "type", "param", "code"}}` with a fitting status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if param:
        return f"Invalid value for '{param}': {message}", param
    return f"Invalid request: {message}", None


def to_error_response(exc: Exception) -> JSONResponse:
    """Map any exception to the OpenAI envelope (the single place that does so)."""
    if isinstance(exc, APIError):
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        # FastAPI answers 422; OpenAI clients expect 400 invalid_request_error.
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, param=param), status_code=400)
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
