"""405 with the whole Allow header for every path a router serves.

FastAPI registers one route per method, and Starlette answers a method no route has with the
Allow header of the first route whose path matched: `Allow: GET` for a path that also takes
DELETE. `answer_other_methods(router)` adds, for each path, one undocumented route for every
other method that answers 405 with all of the path's methods in Allow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.routing import APIRoute

from llmserver_common.errors import APIError

# Every method a client may send (CONNECT is not routed by any ASGI server).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def answer_other_methods(router: APIRouter) -> None:
    """Call once the router's routes are added (and before any catch-all that would match)."""
    allowed: dict[str, set[str]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            allowed.setdefault(route.path, set()).update(route.methods)
    for path, methods in allowed.items():
        others = [method for method in _METHODS if method not in methods]
        router.add_api_route(
            path, _not_allowed(", ".join(sorted(methods))), methods=others, include_in_schema=False
        )


def _not_allowed(allow: str) -> Callable[[], Awaitable[None]]:
    async def endpoint() -> None:
        # GPT4All's wording: "Only POST requests are accepted."
        raise APIError(405, f"Only {allow} requests are accepted.", headers={"Allow": allow})

    return endpoint
