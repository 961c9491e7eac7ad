"""The LocalDocs rerank stage's client side: the candidates sent as title + snippet, the answer's
order and scores taken, inference's failures mapped to the service's own errors. Inference is a
recording stand-in here; tests/e2e/test_rerank.py and bench_retrieval.py run the real one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from llmserver_common.errors import APIError
from llmserver_localdocs.rerank import rerank_references, rerank_text

REFERENCES = [
    {"text": "alpha", "title": "A", "file": "a.txt", "score": 0.9},
    {"text": "beta", "title": None, "file": "b.pdf", "score": 0.8},
    {"text": "", "title": None, "file": None, "score": 0.7},
]


def _run(handler: Any, limit: int = 2) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://inference") as http:
            return await rerank_references(http, "m", "the query", REFERENCES, limit)

    return asyncio.run(go())


def test_candidates_go_out_as_title_and_snippet_and_come_back_in_the_answers_order() -> None:
    sent: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.update(json.loads(request.content))
        results = [{"index": 2, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.25}]
        return httpx.Response(200, json={"results": results, "model": "m", "usage": {}})

    reranked = _run(handler)
    assert sent == {
        "model": "m",
        "query": "the query",
        "documents": ["A\nalpha", "b.pdf\nbeta", "(empty)"],
        "top_n": 2,
    }
    assert [r["score"] for r in reranked] == [0.5, 0.25]
    assert [r["file"] for r in reranked] == [None, "a.txt"]
    assert rerank_text(REFERENCES[0]) == "A\nalpha"


@pytest.mark.parametrize(("status", "expected"), [(500, 503), (429, 503), (400, 502), (404, 502)])
def test_inference_failures_are_the_services_errors(status: int, expected: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": "no such model"}})

    with pytest.raises(APIError) as info:
        _run(handler)
    assert info.value.status_code == expected


def test_inference_down_is_503() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(APIError) as info:
        _run(handler)
    assert info.value.status_code == 503
