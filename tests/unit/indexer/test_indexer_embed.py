"""Embedding client: batching, order, and which inference answers are retried."""

from __future__ import annotations

import json

import httpx
import pytest

from llmserver_indexer.embed import EmbeddingClient, InferenceUnavailable
from llmserver_indexer.extract import FileProblem


def _client(handler: httpx.MockTransport, model: str | None = None) -> EmbeddingClient:
    client = EmbeddingClient("http://inference", model, timeout_s=5)
    client._http = httpx.Client(base_url="http://inference", transport=handler)
    return client


def test_batches_keep_order_and_send_document_input_type() -> None:
    requests: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        rows = [
            {"index": i, "embedding": [float(len(text))]} for i, text in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"data": list(reversed(rows)), "model": "MiniLM"})

    client = _client(httpx.MockTransport(handle), model="MiniLM")
    vectors, model = client.embed(["a", "bb", "ccc", "dddd", "eeeee"], batch_size=2)
    assert vectors == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    assert model == "MiniLM"
    assert [len(body["input"]) for body in requests] == [2, 2, 1]
    assert all(body["input_type"] == "document" and body["model"] == "MiniLM" for body in requests)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_side_failures_are_retryable(status: int) -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(status, json={})))
    with pytest.raises(InferenceUnavailable):
        client.embed(["a"], batch_size=8)


def test_unreachable_inference_is_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(InferenceUnavailable):
        _client(httpx.MockTransport(refuse)).embed(["a"], batch_size=8)


def test_a_refused_input_fails_the_file_with_the_message() -> None:
    error = {"error": {"message": "The model 'x' does not exist.", "type": "not_found_error"}}
    client = _client(httpx.MockTransport(lambda request: httpx.Response(404, json=error)))
    with pytest.raises(FileProblem, match="does not exist"):
        client.embed(["a"], batch_size=8)
