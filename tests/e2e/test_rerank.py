"""POST /v1/rerank through the gateway, on the real stack: the default embedding model orders
documents by relevance (cosine of the query's and each document's vector), top_n and
return_documents as Cohere and Jina define them, and every bad input a 4xx envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

# Query, documents, the index of the one document that answers it.
CASES = [
    (
        "How do I reset my password?",
        [
            "Our office is closed on public holidays.",
            "To reset your password, open Settings, choose Account and click 'Forgot password'.",
            "The invoice is sent by e-mail at the end of each month.",
        ],
        1,
    ),
    (
        "Which planet is known as the Red Planet?",
        [
            "Mars is called the Red Planet because iron oxide on its surface looks reddish.",
            "Photosynthesis turns light, water and carbon dioxide into sugar.",
            "The violin has four strings tuned in fifths.",
        ],
        0,
    ),
    (
        "What is the boiling point of water at sea level?",
        [
            "Shakespeare wrote Hamlet around 1600.",
            "A marathon is 42.195 kilometres long.",
            "At sea level water boils at 100 degrees Celsius.",
        ],
        2,
    ),
]


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), timeout=120) as client:
        yield client


def _error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["message"]
    return error


@pytest.mark.parametrize(("query", "documents", "best"), CASES)
def test_the_relevant_document_is_ranked_first(
    gateway: httpx.Client, query: str, documents: list[str], best: int
) -> None:
    reply = gateway.post("/v1/rerank", json={"query": query, "documents": documents})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    results = body["results"]
    assert results[0]["index"] == best
    assert sorted(r["index"] for r in results) == list(range(len(documents)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]
    assert body["model"] == "all-MiniLM-L6-v2"
    assert body["usage"]["total_tokens"] > 0
    assert all("document" not in r for r in results)


def test_top_n_and_return_documents_with_text_objects(gateway: httpx.Client) -> None:
    query, documents, best = CASES[1]
    reply = gateway.post(
        "/v1/rerank",
        json={
            "model": "all-minilm-l6-v2",  # an alias, resolved by the gateway
            "query": query,
            "documents": [{"text": d} for d in documents],
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == 2
    assert results[0]["index"] == best
    assert results[0]["document"] == {"text": documents[best]}
    assert results[1]["document"] == {"text": documents[results[1]["index"]]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "", "documents": ["a"]}, "query"),
        ({"query": " \n", "documents": ["a"]}, "query"),
        ({"documents": ["a"]}, "query"),
        ({"query": "q", "documents": []}, "documents"),
        ({"query": "q"}, "documents"),
        ({"query": "q", "documents": [""]}, "documents.0"),
        ({"query": "q", "documents": [{"txt": "a"}]}, "documents.0.text"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
        ({"query": "q", "documents": ["a"] * 1001}, "documents"),
        ({"query": "q", "documents": ["a", "x" * 40_000]}, "documents.1"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    gateway: httpx.Client, body: dict[str, Any], param: str
) -> None:
    assert _error(gateway.post("/v1/rerank", json=body), 400)["param"] == param


def test_an_unknown_model_is_404_and_a_chat_model_is_400(gateway: httpx.Client) -> None:
    body = {"query": "q", "documents": ["a"]}
    error = _error(gateway.post("/v1/rerank", json={**body, "model": "no-such-model"}), 404)
    assert error["code"] == "model_not_found"
    error = _error(gateway.post("/v1/rerank", json={**body, "model": "Gemma 3 270M"}), 400)
    assert error["param"] == "model"
    assert error["code"] == "model_not_supported"


def test_other_methods_are_405(gateway: httpx.Client) -> None:
    assert gateway.get("/v1/rerank").status_code == 405
