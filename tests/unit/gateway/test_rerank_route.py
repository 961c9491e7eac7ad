"""The gateway's POST /v1/rerank against the fake inference replica: what it forwards (the
model's alias resolved to its display name, documents as given), the body limit, JSON whatever
the Content-Type, and validation before anything reaches inference."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from gateway_fakes import Upstreams, assert_envelope

ANSWER = {
    "results": [{"index": 1, "relevance_score": 0.5}],
    "model": "MiniLM L6 v2",
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}


def _reranks(upstreams: Upstreams) -> list[dict[str, Any] | None]:
    return [body for _, path, body in upstreams.a.requests if path == "/v1/rerank"]


def test_forwarded_with_the_model_resolved(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    upstreams.a.overrides["/v1/rerank"] = (200, ANSWER, {})
    body = {"model": "minilm", "query": "q", "documents": ["a", {"text": "b"}], "top_n": 1}
    # Form-encoded, as some clients send JSON: read as JSON all the same.
    reply = gateway().post(
        "/v1/rerank",
        content=json.dumps(body),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == ANSWER
    assert _reranks(upstreams) == [
        {
            "model": "MiniLM L6 v2",
            "query": "q",
            "documents": ["a", {"text": "b"}],
            "top_n": 1,
            "return_documents": False,
        }
    ]


def test_an_inference_error_passes_through(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    error = {"error": {"message": "not a reranker", "type": "invalid_request_error"}}
    error["error"].update(param="model", code="model_not_supported")
    upstreams.a.overrides["/v1/rerank"] = (400, error, {})
    body = {"model": "gemma3", "query": "q", "documents": ["a"]}
    assert assert_envelope(gateway().post("/v1/rerank", json=body), 400)["param"] == "model"


def test_bad_bodies_never_reach_inference(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    client = gateway(max_body_bytes=2048)
    big = {"query": "q", "documents": ["x" * 1000] * 3}
    assert_envelope(client.post("/v1/rerank", json=big), 413)
    for bad, param in (
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"query": " ", "documents": ["a"]}, "query"),
        ({"documents": ["a"]}, "query"),
        ({"query": "q", "documents": [{"txt": "a"}]}, "documents.0.text"),
    ):
        assert assert_envelope(client.post("/v1/rerank", json=bad), 400)["param"] == param
    unknown = {"model": "nope", "query": "q", "documents": ["a"]}
    assert assert_envelope(client.post("/v1/rerank", json=unknown), 404)["param"] == "model"
    assert _reranks(upstreams) == []


def test_a_body_field_named_like_a_url_part_is_named_in_the_400(
    gateway: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    # LocalDocs search's `query` is a body field: the 400 names it (not taken for a query string).
    client = gateway()
    for bad in ({"query": ""}, {"query": 5}, {}):
        reply = client.post("/v1/localdocs/search", json=bad)
        assert assert_envelope(reply, 400)["param"] == "query", bad
    assert [path for _, path, _ in upstreams.a.requests if "localdocs" in path] == []
