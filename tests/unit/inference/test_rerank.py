"""POST /v1/rerank on the inference service, with the real MiniLM of models/ (no chat model is
loaded: a chat model's name is refused before anything loads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserver_inference.app import create_app
from llmserver_inference.rerank.scoring import cosine_scores, ranking
from llmserver_inference.settings import InferenceSettings

MODELS = Path(__file__).resolve().parents[3] / "models"

DOCUMENTS = [
    "The recipe needs flour, butter, sugar and two eggs; bake for twenty minutes.",
    "Paris is the capital and largest city of France, on the river Seine.",
    "A GPU runs thousands of threads in parallel to train neural networks.",
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    assert (MODELS / "all-MiniLM-L6-v2.F32.gguf").exists(), "run `make setup`"
    settings = InferenceSettings(models_dir=MODELS, preload_defaults=False, threads=2)
    with TestClient(create_app(settings)) as client:
        yield client


def test_cosine_scores_and_ranking() -> None:
    scores = cosine_scores([1.0, 0.0], [[0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert scores == pytest.approx([0.0, 1.0, 2**-0.5, 0.0])
    assert ranking(scores, None) == [1, 2, 0, 3]  # a tie keeps the request's order
    assert ranking(scores, 2) == [1, 2]


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("What is the capital of France?", 1),
        ("How long do I bake the cake?", 0),
        ("hardware for deep learning", 2),
    ],
)
def test_the_relevant_document_is_ranked_first(client: TestClient, query: str, best: int) -> None:
    reply = client.post("/v1/rerank", json={"query": query, "documents": DOCUMENTS})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "all-MiniLM-L6-v2"
    assert [r["index"] for r in body["results"]][0] == best
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2]
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all("document" not in r for r in body["results"])
    assert body["usage"]["total_tokens"] > 0


def test_top_n_and_return_documents(client: TestClient) -> None:
    reply = client.post(
        "/v1/rerank",
        json={
            "model": "all-minilm-l6-v2",
            "query": "capital of France",
            "documents": [{"text": d} for d in DOCUMENTS],
            "top_n": 1,
            "return_documents": True,
        },
    )
    assert reply.status_code == 200, reply.text
    (result,) = reply.json()["results"]
    assert result["index"] == 1
    assert result["document"] == {"text": DOCUMENTS[1]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "", "documents": ["a"]}, "query"),
        ({"query": "   ", "documents": ["a"]}, "query"),
        ({"query": "q", "documents": []}, "documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"query": "q", "documents": ["a"] * 1001}, "documents"),
        ({"query": "q", "documents": ["a", "x" * 40_000]}, "documents.1"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    client: TestClient, body: dict[str, object], param: str
) -> None:
    reply = client.post("/v1/rerank", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_a_lone_surrogate_is_400_naming_the_document(client: TestClient) -> None:
    raw = '{"query": "q", "documents": ["a", "\\ud800"]}'
    reply = client.post("/v1/rerank", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "documents.1"


def test_an_unknown_model_is_404_and_a_chat_model_400(client: TestClient) -> None:
    unknown = client.post("/v1/rerank", json={"model": "nope", "query": "q", "documents": ["a"]})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    chat = client.post(
        "/v1/rerank", json={"model": "Gemma 3 270M", "query": "q", "documents": ["a"]}
    )
    assert chat.status_code == 400
    assert chat.json()["error"]["param"] == "model"
