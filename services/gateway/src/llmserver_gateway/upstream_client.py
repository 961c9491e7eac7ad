"""The one pooled httpx client that carries every upstream call (inference replicas, localdocs).

httpx's own transport (httpcore) keeps the connections alive and does the HTTP; the gateway
only sets its limits. What the gateway relies on from it: closing a streamed response before
its end closes the connection (that is how a generation is cancelled upstream), a connection
the upstream closed while idle is not reused, and every failure is an httpx exception
(ConnectError, RemoteProtocolError, ReadTimeout, PoolTimeout...) that service code maps to the
OpenAI envelope.
"""

from __future__ import annotations

from typing import Any

import httpx

from llmserver_gateway.settings import GatewaySettings

# Every exception httpx raises for a request: HTTPError does not cover them all (InvalidURL,
# CookieConflict and the stream-state errors are separate), and none may become a 500.
HTTPX_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    httpx.StreamError,
)

# Many concurrent streams are normal; connections to the replicas are kept alive.
MAX_CONNECTIONS = 1000
MAX_KEEPALIVE_CONNECTIONS = 100
# Below uvicorn's 5 s keep-alive: a connection the upstream is about to close is not reused.
KEEPALIVE_EXPIRY_S = 4.0


def upstream_transport() -> httpx.AsyncHTTPTransport:
    """httpx's HTTP/1.1 transport, sized for many concurrent streams.

    Upstreams are internal addresses: never sent through a proxy from the environment.
    """
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
        trust_env=False,
    )


def upstream_client(
    settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamClient:
    """The gateway's client; `transport` replaces the network in unit tests (fake upstreams)."""
    return UpstreamClient(
        transport=transport or upstream_transport(),
        trust_env=False,
        timeout=httpx.Timeout(settings.inference_timeout_s, connect=settings.connect_timeout_s),
    )


class _UnkeptCookies(httpx.Cookies):
    """A cookie store that stores nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class UpstreamClient(httpx.AsyncClient):
    """httpx.AsyncClient that never keeps an upstream's cookies.

    One client carries every user's requests: a Set-Cookie from an upstream must not be sent back
    on other users' requests.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unkept_cookies = _UnkeptCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._unkept_cookies

    @cookies.setter
    def cookies(self, _cookies: object) -> None:
        raise TypeError("the gateway's upstream client keeps no cookies")
