"""Optional bearer API key: when set, every route but /health refuses a missing or wrong key."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from llmserver_common.errors import APIError, to_error_response

# /health stays open so orchestrators and the test harness can probe readiness without the key.
# The web page and its static files (web.py) hold no data and a browser opening a page sends no
# key: the page asks for it and sends it with every API call.
_OPEN_PATHS = frozenset({"/health", "/"})
_OPEN_PREFIXES = ("/web/",)
_X_API_KEY_PREFIX = "/v1/messages"


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()
        self.expected_x_api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        presented = b""
        x_api_key = b""
        # Anthropic's clients send the key as `x-api-key: <key>`: taken on Anthropic's routes.
        anthropic = path.startswith(_X_API_KEY_PREFIX)
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
            elif name == b"x-api-key" and anthropic:
                x_api_key = value
        # Constant-time comparisons: no timing hints about the key.
        bearer_ok = secrets.compare_digest(presented, self.expected)
        x_ok = bool(x_api_key) and secrets.compare_digest(x_api_key, self.expected_x_api_key)
        if not (bearer_ok or x_ok):
            error = APIError(
                401,
                "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await to_error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
