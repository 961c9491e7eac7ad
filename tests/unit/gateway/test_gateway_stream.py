"""Streaming over real sockets: chunks are relayed as they come; a client leaving stops upstream.

The fake inference service and the gateway both run under uvicorn on loopback ports, so what is
tested is what a client sees, not what a mock transport happens to do.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from gateway_fakes import MODELS, chat_chunk, make_settings

from llmserver_gateway.app import create_app


class StreamingInference:
    """A fake inference replica whose stream the test controls chunk by chunk."""

    def __init__(self) -> None:
        self.release_rest = threading.Event()  # set by the test to let the stream go on
        self.closed = threading.Event()  # set when the upstream generator stops, for any reason
        self.finished = threading.Event()  # set only when the whole stream was sent
        self.sent = 0
        self.endless = False
        self.app = FastAPI()
        self.app.get("/health")(self.health)
        self.app.get("/v1/models")(self.models)
        self.app.post("/v1/chat/completions")(self.chat)

    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": MODELS}

    async def chat(self) -> StreamingResponse:
        return StreamingResponse(self.events(), media_type="text/event-stream")

    async def events(self) -> AsyncIterator[bytes]:
        model = "Gemma 3 270M"
        try:
            yield self.event(chat_chunk(model, "first"))
            self.sent += 1
            if self.endless:
                for _ in range(400):
                    await asyncio.sleep(0.05)
                    yield self.event(chat_chunk(model, "more"))
                    self.sent += 1
            else:
                for _ in range(400):  # wait for the test, at most 20 s
                    if self.release_rest.is_set():
                        break
                    await asyncio.sleep(0.05)
            yield self.event(chat_chunk(model, None, "stop"))
            yield b"data: [DONE]\n\n"
            self.finished.set()
        finally:
            self.closed.set()

    @staticmethod
    def event(chunk: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(chunk)}\n\n".encode()


def chat_request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "Gemma 3 270M",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "localdocs": False,
        **extra,
    }


def test_first_chunk_arrives_before_upstream_finishes(serve: Callable[[Any], str]) -> None:
    upstream = StreamingInference()
    upstream_url = serve(upstream.app)
    gateway_url = serve(create_app(make_settings(inference_urls=[upstream_url])))

    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", f"{gateway_url}/v1/chat/completions", json=chat_request()
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            # The upstream is still holding its stream open: nothing was buffered in between.
            assert not upstream.finished.is_set()
            chunk = json.loads(first.removeprefix("data: "))
            assert chunk["choices"][0]["delta"]["content"] == "first"
            assert chunk["choices"][0]["references"] is None
            upstream.release_rest.set()
            rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    assert json.loads(rest[0].removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"
    assert upstream.finished.is_set()


def test_client_disconnect_cancels_upstream(serve: Callable[[Any], str]) -> None:
    upstream = StreamingInference()
    upstream.endless = True
    upstream_url = serve(upstream.app)
    app = create_app(make_settings(inference_urls=[upstream_url]))
    gateway_url = serve(app)

    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", f"{gateway_url}/v1/chat/completions", json=chat_request()
        ) as response:
            lines = response.iter_lines()
            received = [next(line for line in lines if line) for _ in range(2)]
            assert all(line.startswith("data: {") for line in received)
        # Leaving the `with` closes the connection mid-stream.

    assert upstream.closed.wait(timeout=10), "the upstream stream was never closed"
    assert not upstream.finished.is_set()
    assert upstream.sent < 400
    replica = app.state.pool.replicas[0]
    for _ in range(100):
        if replica.in_flight == 0:
            break
        threading.Event().wait(0.05)
    assert replica.in_flight == 0


def test_upstream_error_before_stream_is_http_error(serve: Callable[[Any], str]) -> None:
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def busy() -> JSONResponse:
        body = {
            "error": {
                "message": "Too many requests queued.",
                "type": "rate_limit_error",
                "param": None,
                "code": "queue_full",
            }
        }
        return JSONResponse(body, status_code=429, headers={"Retry-After": "1"})

    @upstream.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": MODELS}

    @upstream.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    gateway_url = serve(create_app(make_settings(inference_urls=[serve(upstream)])))
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat_request(), timeout=30)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "queue_full"


def test_replica_dying_mid_stream_ends_with_error_event(serve: Callable[[Any], str]) -> None:
    """An upstream that drops the connection mid-stream: error event, then [DONE]."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def half_answer() -> None:
        # Health checks and the models listing first, then one chat that is cut short. Each
        # connection serves one request, and its answer says so (Connection: close): a server
        # that claims keep-alive and then hangs up races the client's next request.
        while True:
            conn, _ = listener.accept()
            request = conn.recv(65536)
            if request.startswith(b"GET /v1/models"):
                body = json.dumps({"object": "list", "data": MODELS}).encode()
                head = f"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {len(body)}\r\n"
                conn.sendall(head.encode() + b"content-type: application/json\r\n\r\n" + body)
            elif request.startswith(b"POST"):
                chunk = json.dumps(chat_chunk("Gemma 3 270M", "partial"))
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                    + f"{len(chunk) + 8:x}\r\ndata: {chunk}\n\n\r\n".encode()
                )
                conn.close()
                return
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
            conn.close()

    thread = threading.Thread(target=half_answer, daemon=True)
    thread.start()
    gateway_url = serve(create_app(make_settings(inference_urls=[f"http://127.0.0.1:{port}"])))
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat_request(), timeout=30)
    listener.close()
    events = [e for e in response.text.split("\n\n") if e]
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["content"] == (
        "partial"
    )
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_error" and "127.0.0.1" not in error["message"]
    assert events[-1] == "data: [DONE]"


def test_client_disconnect_abandons_non_streamed_request(serve: Callable[[Any], str]) -> None:
    upstream = FastAPI()
    upstream_saw_disconnect = threading.Event()

    @upstream.post("/v1/chat/completions")
    async def slow_chat(request: Request) -> JSONResponse:
        for _ in range(400):  # a long generation: at most 20 s
            if await request.is_disconnected():
                upstream_saw_disconnect.set()
                break
            await asyncio.sleep(0.05)
        return JSONResponse({"choices": []})

    @upstream.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": MODELS}

    @upstream.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app = create_app(make_settings(inference_urls=[serve(upstream)]))
    gateway_url = serve(app)
    body = chat_request(stream=False)
    try:
        early = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=1.0)
        raise AssertionError(f"the slow upstream answered early: {early.text}")
    except httpx.ReadTimeout:
        pass  # the client gave up and closed its connection
    assert upstream_saw_disconnect.wait(timeout=10)
    replica = app.state.pool.replicas[0]
    for _ in range(100):
        if replica.in_flight == 0:
            break
        threading.Event().wait(0.05)
    assert replica.in_flight == 0
