"""The gateway's forwarding of OpenAI's Files, Vector Stores and Responses API to localdocs:
paths, queries, multipart bodies (small and streamed) and the answer's headers pass unchanged;
a localdocs that cannot be reached is 503, one that is too slow 504, in the envelope."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import Upstreams, assert_envelope

Gateway = Callable[..., TestClient]


def _recording(seen: list[httpx.Request], answer: httpx.Response) -> Callable:
    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return answer

    return handle


@pytest.mark.parametrize("size", [10, 1024 * 1024], ids=["small", "streamed"])
def test_multipart_upload_reaches_localdocs_whole(
    gateway: Gateway, upstreams: Upstreams, size: int
) -> None:
    seen: list[httpx.Request] = []
    upstreams.localdocs = _recording(  # type: ignore[assignment]
        seen, httpx.Response(200, json={"id": "file-1", "object": "file"})
    )
    data = b"x" * size
    response = gateway().post(
        "/v1/files", files={"file": ("notes.txt", data)}, data={"purpose": "assistants"}
    )
    assert response.status_code == 200 and response.json()["id"] == "file-1"
    (sent,) = seen
    assert sent.method == "POST" and sent.url.path == "/v1/files"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert data in sent.content and b'name="purpose"' in sent.content


def test_path_query_and_answer_headers_pass(gateway: Gateway, upstreams: Upstreams) -> None:
    seen: list[httpx.Request] = []
    upstreams.localdocs = _recording(  # type: ignore[assignment]
        seen,
        httpx.Response(
            200,
            content=b"raw bytes",
            headers={
                "content-type": "application/octet-stream",
                "content-disposition": 'attachment; filename="notes.txt"',
                "openai-poll-after-ms": "250",
                "x-internal": "not for clients",
            },
        ),
    )
    client = gateway()
    response = client.get("/v1/vector_stores/vs_1/files?filter=completed&limit=2&after=file-9")
    assert seen[-1].url.path == "/v1/vector_stores/vs_1/files"
    assert seen[-1].url.query == b"filter=completed&limit=2&after=file-9"
    assert response.headers["openai-poll-after-ms"] == "250"
    assert "x-internal" not in response.headers
    content = client.get("/v1/files/file-1/content")
    assert content.content == b"raw bytes"
    assert content.headers["content-disposition"] == 'attachment; filename="notes.txt"'
    client.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert seen[-1].url.path == "/v1/responses" and b'"input"' in seen[-1].content
    client.delete("/v1/vector_stores/vs_1")
    assert seen[-1].method == "DELETE"


def test_localdocs_errors_pass_in_the_envelope(gateway: Gateway, upstreams: Upstreams) -> None:
    body = {"error": {"message": "No file", "type": "invalid_request_error", "param": "file_id"}}
    upstreams.localdocs = lambda request: httpx.Response(404, json=body)  # type: ignore[assignment]
    response = gateway().get("/v1/files/file-nope")
    assert response.status_code == 404 and response.json() == body


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (httpx.ConnectError("refused"), 503),
        (httpx.ReadTimeout("slow"), 504),
        (httpx.RemoteProtocolError("closed"), 503),
    ],
    ids=["refused", "slow", "closed"],
)
def test_unreachable_localdocs_is_503_or_504(
    gateway: Gateway, upstreams: Upstreams, exc: Exception, status: int
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise exc

    upstreams.localdocs = broken  # type: ignore[assignment]
    response = gateway().post("/v1/vector_stores", json={"name": "x"})
    assert response.status_code == status
    assert_envelope(response, status)
