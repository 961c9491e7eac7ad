"""Fake upstreams for the gateway's unit tests (used through conftest.py's fixtures).

Most tests put the fakes behind httpx.MockTransport (no sockets). Streaming tests need real
sockets to observe chunk timing and disconnects, so `serve` runs an ASGI app under uvicorn in a
thread on a free 127.0.0.1 port.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmserver_gateway.settings import GatewaySettings

INFERENCE_A = "http://inference-a.test"
INFERENCE_B = "http://inference-b.test"
LOCALDOCS = "http://localdocs.test"

MODELS = [
    {
        "id": "Gemma 3 270M",
        "object": "model",
        "created": 0,
        "owned_by": "llmserver",
        "kind": "chat",
        "filename": "gemma-3-270m-it-Q4_K_M.gguf",
        "aliases": ["gemma3"],
        "context_length": 2048,
        "loaded": True,
    },
    {
        "id": "Phi-3 Mini Instruct",
        "object": "model",
        "created": 0,
        "owned_by": "llmserver",
        "kind": "chat",
        "filename": "Phi-3-mini-4k-instruct.Q4_0.gguf",
        "aliases": [],
        "context_length": 4096,
        "loaded": False,
    },
    {
        "id": "MiniLM L6 v2",
        "object": "model",
        "created": 0,
        "owned_by": "llmserver",
        "kind": "embedding",
        "filename": "all-MiniLM-L6-v2.Q8_0.gguf",
        "aliases": ["minilm"],
        "context_length": 512,
        "loaded": True,
    },
]

REFERENCE = {
    "text": "The flux capacitor needs 1.21 gigawatts.",
    "author": "Doc Brown",
    "date": "1985-10-26T01:21:00Z",
    "page": 3,
    "title": "Manual",
    "file": "manual.pdf",
    "path": "/docs/manual.pdf",
    "collection": "manuals",
    "score": 0.91,
}


def chat_result(model: str, content: str = "Hello!", n: int = 1) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def chat_chunk(model: str, text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@dataclass
class FakeInference:
    """One inference replica behind MockTransport: records requests, answers OpenAI shapes."""

    name: str
    down: bool = False
    health_status: int = 200
    # path -> (status, body, headers) to answer instead of the normal result.
    overrides: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=dict)
    # path -> transport error to raise (e.g. httpx.ReadTimeout), or raw SSE bytes to answer.
    failures: dict[str, type[httpx.TransportError]] = field(default_factory=dict)
    raw_streams: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body))
        if path in self.failures:
            raise self.failures[path]("injected failure", request=request)
        if path in self.raw_streams:
            return httpx.Response(
                200, content=self.raw_streams[path], headers={"content-type": "text/event-stream"}
            )
        if path in self.overrides:
            status, payload, headers = self.overrides[path]
            return httpx.Response(status, json=payload, headers=headers)
        if path == "/health":
            return httpx.Response(self.health_status, json={"status": "ok"})
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": MODELS})
        if path == "/v1/chat/completions":
            assert body is not None
            if body.get("stream"):
                chunks = [
                    chat_chunk(body["model"], "Hel"),
                    chat_chunk(body["model"], "lo"),
                    chat_chunk(body["model"], None, "stop"),
                ]
                return httpx.Response(
                    200, content=sse(chunks), headers={"content-type": "text/event-stream"}
                )
            return httpx.Response(200, json=chat_result(body["model"], n=body.get("n") or 1))
        if path == "/v1/completions":
            assert body is not None
            return httpx.Response(
                200,
                json={
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {"text": " world", "index": 0, "logprobs": None, "finish_reason": "length"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )
        if path == "/v1/embeddings":
            assert body is not None
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "model": body.get("model", "MiniLM L6 v2"),
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        return httpx.Response(404, json={"error": {"message": "Not found.", "type": "x"}})


@dataclass
class FakeLocalDocs:
    down: bool = False
    search_status: int = 200
    active: list[str] = field(default_factory=list)
    collections: set[str] = field(default_factory=lambda: {"manuals"})
    results: list[dict[str, Any]] = field(default_factory=lambda: [dict(REFERENCE)])
    requests: list[tuple[str, str, str, bytes]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        self.requests.append((request.method, path, request.url.query.decode(), request.content))
        if path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/v1/localdocs/active" and request.method == "GET":
            return httpx.Response(200, json={"collections": self.active})
        if path == "/v1/localdocs/active" and request.method == "PUT":
            self.active = json.loads(request.content)["collections"]
            return httpx.Response(200, json={"collections": self.active})
        if path == "/v1/localdocs/search":
            if self.search_status != 200:
                return httpx.Response(self.search_status, text="Internal Server Error")
            body = json.loads(request.content)
            unknown = [c for c in body["collections"] if c not in self.collections]
            if unknown:
                return httpx.Response(
                    404,
                    json={
                        "error": {
                            "message": f"Unknown collection '{unknown[0]}'.",
                            "type": "not_found_error",
                            "param": "collections",
                            "code": "collection_not_found",
                        }
                    },
                )
            return httpx.Response(200, json={"data": self.results[: body["k"]]})
        if path == "/v1/localdocs/collections" and request.method == "POST":
            return httpx.Response(201, json={"name": "manuals", "state": "indexing"})
        return httpx.Response(404, json={"error": {"message": "Not found.", "type": "x"}})


@dataclass
class Upstreams:
    a: FakeInference
    b: FakeInference
    localdocs: FakeLocalDocs

    def transport(self) -> httpx.MockTransport:
        by_host = {
            "inference-a.test": self.a,
            "inference-b.test": self.b,
            "localdocs.test": self.localdocs,
        }

        def handle(request: httpx.Request) -> httpx.Response:
            return by_host[request.url.host](request)

        return httpx.MockTransport(handle)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "inference_urls": [INFERENCE_A],
        "localdocs_url": LOCALDOCS,
        # No background re-checks unless a test asks: they would race the test's own setup.
        "health_check_interval_s": 3600,
        "localdocs_active_cache_ttl_s": 0,
        "models_cache_ttl_s": 0,
        "models_list_cache_ttl_s": 0,
        "inference_dns_refresh_s": 0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


# -- assertions and bodies shared by the gateway test files ---------------------------------


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "Gemma 3 270M", "messages": [{"role": "user", "content": "Hi"}], **extra}


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"] and ".test" not in error["message"]
    return error
