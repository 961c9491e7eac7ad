"""A lean httpx transport for the gateway's plain-HTTP upstreams (inference, localdocs).

httpx stays the client; only the layer under it changes. httpx's default transport (httpcore,
h11 and anyio, all pure Python) is most of the latency the gateway may add: against a local
server that answers at once, one small POST through httpx.AsyncClient took 1.2-1.3 ms with it
and 0.5 ms with this one (client layer included), on the 2-core development machine. This one
keeps HTTP/1.1 connections alive over asyncio protocols and parses responses with httptools (C,
the parser uvicorn uses). https origins and HEAD requests go to httpx's own transport, which
verifies certificates and knows that a HEAD answer has no body.

Semantics kept from httpx: connect failures raise ConnectError / ConnectTimeout, a peer that
closes before answering raises RemoteProtocolError, slow answers ReadTimeout, too many
connections in use PoolTimeout; closing a response before its end closes the connection (which
is how the gateway cancels a generation upstream); only complete keep-alive responses return
their connection to the pool.
"""

from __future__ import annotations

import asyncio
import collections
import select
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

# Body bytes buffered unread before the socket stops being read (backpressure).
_HIGH_WATER = 256 * 1024
# Status codes whose responses never have a body.
_NO_BODY_STATUS = frozenset({204, 304})
# A body declared this small is awaited whole before the response is handed over: uvicorn sends
# head and body in two writes, and waking the caller for the head alone costs a second pass
# through its whole await chain for nothing.
_SMALL_BODY = 64 * 1024


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the socket's events, parsed into one response at a time."""

    def __init__(self, origin: tuple[str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._can_write = True
        self._write_waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.small_body = False
        self.complete = False
        self.keep_alive = False
        # No Content-Length and not chunked: the body ends when the peer closes.
        self.ends_at_close = True
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.error: httpx.TransportError | None = None
        self.paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.complete:
            # Bytes after the end of the response (or on an idle connection): the peer does not
            # speak the HTTP we expect, so the connection cannot be trusted with another request.
            self.keep_alive = False
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A complete response before the bad bytes is still delivered; its connection is not
            # reused (closed).
            self.error = httpx.RemoteProtocolError(f"malformed HTTP response: {exc}")
            self.close()
        if self.ready():
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ends_here = self.headers_done and self.ends_at_close and exc is None
        if not self.complete and self.error is None and ends_here:
            self.complete = True  # a body delimited by the end of the connection
        elif not self.complete and self.error is None:
            if self.headers_done:
                message = "peer closed connection without sending complete message body"
            else:
                message = "Server disconnected without sending a response."
            self.error = httpx.RemoteProtocolError(message)
        self._wake()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response in the same packet: nothing asked for it. Raising stops the
            # parser; data_received then closes the connection (see there).
            raise httpx.RemoteProtocolError("unexpected data after the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.ends_at_close = False
            self.small_body = value.strip().isdigit() and int(value) <= _SMALL_BODY
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            self.ends_at_close = self.small_body = False

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.parser.get_status_code() in _NO_BODY_STATUS:
            self.ends_at_close = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    # -- used by the transport and the response stream -------------------------------------

    def ready(self) -> bool:
        """Whether the response can be handed over (or has failed): head, and a small body whole."""
        if self.complete or self.error is not None:
            return True
        return self.headers_done and not self.small_body

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until the next event on this connection; ReadTimeout after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the upstream's answer") from None
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) > 1 else self.chunks.popleft()
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes, timeout: float | None) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if self._can_write or self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter = self._write_waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except TimeoutError:
            self.close()
            raise httpx.WriteTimeout("timed out sending the request upstream") from None
        finally:
            self._write_waiter = None
            if timer is not None:
                timer.cancel()

    def usable_again(self) -> bool:
        """Whether an idle connection may carry another request.

        An idle connection must have nothing to read. The upstream's close may be waiting in the
        kernel before the event loop has run connection_lost: ask the socket directly (as
        httpcore does), so a request is not sent into a connection that is already gone.
        """
        if self.closed or self.transport is None:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    def start_response(self) -> None:
        self._reset()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one response, as it arrives; closing it frees or closes the connection."""

    def __init__(
        self, transport: UpstreamTransport, connection: _Connection, read_timeout: float | None
    ) -> None:
        self.transport = transport
        self.connection = connection
        self.read_timeout = read_timeout
        self.released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self.connection
        while True:
            if connection.chunks:
                yield connection.take()
                continue
            if connection.complete:
                return
            if connection.error is not None:
                raise connection.error
            await connection.wait(self.read_timeout)

    async def aclose(self) -> None:
        if self.released:
            return
        self.released = True
        connection = self.connection
        reusable = (
            connection.complete
            and connection.keep_alive
            and not connection.closed
            and not connection.chunks
        )
        self.transport.release(connection, reusable)


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 for http:// origins; everything else goes to `fallback`."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry_s: float,
        fallback: httpx.AsyncBaseTransport,
    ) -> None:
        self.fallback = fallback
        self.max_keepalive_connections = max_keepalive_connections
        self.keepalive_expiry_s = keepalive_expiry_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_count = 0
        # One slot per request in flight: with HTTP/1.1 that is one connection each.
        self._slots = asyncio.Semaphore(max_connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http" or request.method == "HEAD":
            return await self.fallback.handle_async_request(request)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        await self._take_slot(timeouts.get("pool"))
        try:
            connection = await self._connection((url.host, url.port or 80), timeouts)
            try:
                await self._send(connection, request, timeouts.get("write"))
                while not connection.ready():
                    await connection.wait(read_timeout)
                if not connection.headers_done:
                    assert connection.error is not None
                    raise connection.error
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._slots.release()
            raise
        status = connection.parser.get_status_code()
        return httpx.Response(
            status,
            headers=connection.headers,
            stream=_ResponseStream(self, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _take_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("every upstream connection is in use") from None

    async def _connection(
        self, origin: tuple[str, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        """An idle kept-alive connection to `origin`, or a new one."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if now - connection.idle_since < self.keepalive_expiry_s and connection.usable_again():
                connection.start_response()
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        host, port = origin
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin), host, port
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return connection

    async def _send(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> None:
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        head = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        chunked = False
        for name, value in request.headers.raw:
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        if chunked:
            # A streamed body was read whole above: send it as one chunk.
            framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            body = framed + b"0\r\n\r\n"
        if connection.closed:
            raise connection.error or httpx.RemoteProtocolError("connection closed")
        await connection.write(b"".join(head) + body, timeout)

    def release(self, connection: _Connection, reusable: bool) -> None:
        """A response is finished with: keep its connection for the next request, or close."""
        self._slots.release()
        if not reusable or self._idle_count >= self.max_keepalive_connections:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._idle_count = 0
        await self.fallback.aclose()


class _UnkeptCookies(httpx.Cookies):
    """A cookie store that stores nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class UpstreamClient(httpx.AsyncClient):
    """httpx.AsyncClient that never keeps an upstream's cookies.

    One client carries every user's requests: a Set-Cookie from an upstream must not be sent back
    on other users' requests. Skipping the cookie jar also saves the urllib request objects httpx
    builds for it on every response (~25 us).
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
