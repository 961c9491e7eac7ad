"""The POST generation routes, served without FastAPI's per-request routing and dependencies.

Chat and completion requests are the hot path. FastAPI's exception and exit-stack middleware,
route matching, Request wrapping and dependency solving cost ~0.4 ms of pure Python per chat
request on the 2-core development machine (measured in-process: 2.3 ms -> 1.95 ms per request),
a large share of the 3 ms the gateway may add. This ASGI layer sits inside the user middleware
(CORS, metrics and the API key still apply) and calls the very same endpoint functions; FastAPI
keeps the routes for /docs and for every other method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserver_common.errors import to_error_response
from llmserver_gateway.service import GatewayService

Endpoint = Callable[[Request, GatewayService], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class GenerationFastPath:
    """Dispatch `POST <path>` straight to its endpoint; everything else goes on to FastAPI."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        fastapi_app: FastAPI,
        router: APIRouter,
        paths: list[str],
        service: GatewayService,
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.service = service
        # The route objects themselves: the metrics middleware labels requests by
        # scope["route"], and each route's endpoint is the function FastAPI would call.
        self.routes = {
            route.path: route
            for route in router.routes
            if isinstance(route, APIRoute) and route.path in paths and "POST" in route.methods
        }
        missing = set(paths) - set(self.routes)
        if missing:
            raise ValueError(f"no POST route registered for {sorted(missing)}")
        self.endpoints: dict[str, Endpoint] = {
            path: route.endpoint for path, route in self.routes.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]
        request = Request(scope, receive, send)
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            response = await endpoint(request, self.service)
            await response(scope, receive, send_noting_start)
        except Exception as exc:
            if started:
                raise  # nothing sensible can follow a started response; the server logs it
            handler = self._handler_for(exc)
            answer = await handler(request, exc) if handler else to_error_response(exc)
            await answer(scope, receive, send)
            # An exception kept for reuse must not accumulate tracebacks across requests.
            exc.__traceback__ = None

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        """The app's own handler for this exception (the same ones FastAPI would use)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                handler: ExceptionHandler = handlers[cls]  # type: ignore[assignment]
                return handler
        return None
