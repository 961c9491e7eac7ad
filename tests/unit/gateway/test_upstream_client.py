"""The gateway's upstream client (httpx with the limits app.py gives it) over real loopback
sockets: the library behaviour the gateway relies on (keep-alive, a closed stream cancelling the
upstream, failures as the httpx exceptions the service maps to the OpenAI envelope, no cookies).

Each test runs a small asyncio server that writes exact bytes, so keep-alive, framing, early
closes and timeouts are under the test's control.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from gateway_fakes import make_settings

from llmserver_gateway.upstream_client import upstream_client, upstream_transport

# A broken transport tends to hang rather than fail: bound every test.
pytestmark = pytest.mark.timeout(20)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    return head + b"".join(extra) + b"content-length: %d\r\n\r\n" % len(body) + body


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head and its body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    length = 0
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


class Server:
    """A loopback server running `handler` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


def client(*, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """The client create_app builds, with test timeouts."""
    http = upstream_client(make_settings(), upstream_transport())
    http.timeout = timeout or httpx.Timeout(5.0)
    return http


async def keep_alive_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with its own body, echoed as JSON."""
    while True:
        head, body = await read_request(reader)
        path = head.split(b" ")[1]
        writer.write(ok(json.dumps({"path": path.decode(), "body": body.decode()}).encode()))
        await writer.drain()


async def test_sequential_requests_share_one_connection() -> None:
    server = Server(keep_alive_answers)
    async with server as base, client() as http:
        first = await http.post(f"{base}/a?x=1", content=b"one")
        second = await http.post(f"{base}/b", json={"n": 2})
    assert first.status_code == 200
    assert first.json() == {"path": "/a?x=1", "body": "one"}
    assert second.json() == {"path": "/b", "body": '{"n":2}'}
    assert first.http_version == "HTTP/1.1"
    assert server.connections == 1


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    go_on = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()  # keep the connection open until the client is done

    async with Server(stream) as base, client() as http:
        async with http.stream("GET", f"{base}/events") as response:
            pieces = response.aiter_bytes()
            # The first piece comes before the server sends the rest.
            assert await asyncio.wait_for(pieces.__anext__(), 5) == b"first"
            go_on.set()
            assert [piece async for piece in pieces] == [b"last"]


async def test_head_and_small_body_in_separate_writes_make_one_response() -> None:
    async def two_writes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            # As uvicorn does: the head in one write, the body in the next.
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b'{"a": true}')
            await writer.drain()

    server = Server(two_writes)
    async with server as base, client() as http:
        for _ in range(2):
            assert (await http.get(f"{base}/")).json() == {"a": True}
    assert server.connections == 1


async def test_body_ending_at_close_is_complete_and_not_reused() -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    server = Server(close_delimited)
    async with server as base, client() as http:
        assert (await http.get(f"{base}/")).content == b"until the end"
        assert (await http.get(f"{base}/")).content == b"until the end"
    assert server.connections == 2


async def test_connection_closed_by_upstream_while_idle_is_not_reused() -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Claims keep-alive (HTTP/1.1, Content-Length) but closes right after answering.
        await read_request(reader)
        writer.write(ok(b"{}"))
        await writer.drain()

    server = Server(one_answer_then_close)
    async with server as base, client() as http:
        for _ in range(3):
            assert (await http.get(f"{base}/")).status_code == 200
    assert server.connections == 3


async def test_refused_connection_is_connect_error() -> None:
    async with Server(keep_alive_answers) as base:
        pass  # closed: nothing listens on that port any more
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{base}/")


async def test_upstream_closing_before_answering_is_remote_protocol_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with Server(hang_up) as base, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{base}/v1/chat/completions", content=b"{}")


async def test_body_cut_short_is_remote_protocol_error() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with Server(truncated) as base, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"{base}/")


async def test_malformed_answer_is_remote_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Server(garbage) as base, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"{base}/")


async def test_silent_upstream_is_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    timeout = httpx.Timeout(5.0, read=0.1)
    async with Server(silent) as base, client(timeout=timeout) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{base}/")


async def test_pause_mid_body_longer_than_read_timeout_is_read_timeout() -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf.")
        await writer.drain()
        await reader.read()

    timeout = httpx.Timeout(5.0, read=0.1)
    async with Server(stalls) as base, client(timeout=timeout) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{base}/")


async def test_closing_a_response_early_closes_its_connection() -> None:
    upstream_saw_close = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"4\r\ntick\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            upstream_saw_close.set()

    server = Server(endless)
    async with server as base, client() as http:
        async with http.stream("GET", f"{base}/") as response:
            async for _ in response.aiter_bytes():
                break  # the client goes away after the first piece
        # How the gateway cancels a generation: the upstream sees its connection close.
        await asyncio.wait_for(upstream_saw_close.wait(), 5)
        # And the next request does not try to reuse it.
        async with Server(keep_alive_answers) as other:
            assert (await http.get(f"{other}/")).status_code == 200


async def test_large_body_arrives_whole() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: past the read-pause threshold

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
            writer.write(payload)
            await writer.drain()

    server = Server(big)
    async with server as base, client() as http:
        async with http.stream("GET", f"{base}/") as response:
            received = b""
            pieces = response.aiter_bytes()
            received += await pieces.__anext__()
            # A slow reader: meanwhile more than the threshold arrives, so reading pauses, and
            # must resume once the reader catches up.
            await asyncio.sleep(0.2)
            received += b"".join([piece async for piece in pieces])
        assert received == payload
        assert (await http.get(f"{base}/")).content == payload
    assert server.connections == 1


async def test_streamed_request_body_is_sent_chunked() -> None:
    async def body_parts() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    async with Server(keep_alive_answers) as base, client() as http:
        response = await http.post(f"{base}/upload", content=body_parts())
    assert response.json() == {"path": "/upload", "body": "hello world"}


async def test_no_content_answer_has_an_empty_body_and_keeps_the_connection() -> None:
    async def no_content(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    server = Server(no_content)
    async with server as base, client() as http:
        for _ in range(2):
            response = await http.delete(f"{base}/thing")
            assert (response.status_code, response.content) == (204, b"")
    assert server.connections == 1


async def test_an_upstream_cookie_is_never_sent_on_later_requests() -> None:
    seen: list[bytes] = []

    async def sets_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            seen.append(head)
            writer.write(ok(b"{}", b"set-cookie: session=alice\r\n"))
            await writer.drain()

    async with Server(sets_cookie) as base, client() as http:
        await http.get(f"{base}/")
        await http.get(f"{base}/")
    assert len(seen) == 2 and b"cookie" not in seen[1].lower()
