"""Weaviate down or hanging: the LocalDocs API answers 503 with Retry-After at once, says so in
/health, and works again as soon as Weaviate is back, without a restart.

The Weaviate client is faked at the service's seams (the chunks collection, the docstore calls
and the readiness probe); Redis and inference are faked too. Hanging calls block on an event
the test releases only at the end, so an answer that arrives while one is still blocked proves
the service did not wait for it (the real client retries a refused search for ~63 s).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from weaviate.exceptions import WeaviateQueryError

from llmserver_common import docstore
from llmserver_localdocs.app import create_app
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.settings import LocalDocsSettings

REFERENCE = {
    "text": "the lighthouse log",
    "author": None,
    "date": None,
    "page": None,
    "title": None,
    "file": "log.txt",
    "path": "/docs/log.txt",
    "collection": "logs",
    "score": 0.9,
}


class FakeWeaviate:
    """What the fake client does on the next search: answer, fail, or hang until released."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.ready = True
        self.connects = 0
        self.searches = 0
        self.release = threading.Event()
        self.hang_ended = threading.Event()

    def search(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.searches += 1
        if self.mode == "fail":
            raise WeaviateQueryError("connection refused", "GRPC search")
        if self.mode == "hang":
            self.release.wait(timeout=30)
            self.hang_ended.set()
            raise WeaviateQueryError("retries exhausted", "GRPC search")
        return [dict(REFERENCE)]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeWeaviate:
    fake = FakeWeaviate()

    def chunks_collection(self: LocalDocsService) -> object:
        fake.connects += 1
        return object()

    async def weaviate_ready(self: LocalDocsService) -> bool:
        return fake.ready

    async def record(self: LocalDocsService, name: str) -> dict[str, str]:
        return {"name": name, "uid": "u1"}

    async def embed_query(self: LocalDocsService, query: str, model: str | None) -> list[float]:
        return [0.1, 0.2]

    monkeypatch.setattr(LocalDocsService, "_chunks_collection_sync", chunks_collection)
    monkeypatch.setattr(LocalDocsService, "_weaviate_ready", weaviate_ready)
    monkeypatch.setattr(LocalDocsService, "_record", record)
    monkeypatch.setattr(LocalDocsService, "_embed_query", embed_query)
    monkeypatch.setattr(docstore, "hybrid_search", fake.search)
    return fake


@pytest.fixture
def client(fake: FakeWeaviate, tmp_path: Path) -> Iterator[TestClient]:
    settings = LocalDocsSettings(
        allowed_roots=str(tmp_path),
        rescan_interval_s=0,
        weaviate_timeout_s=0.3,
        redis_url="redis://127.0.0.1:1/0",
    )
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client
    finally:
        fake.release.set()


def search(client: TestClient) -> Any:
    body = {"query": "lighthouse", "collections": ["logs"]}
    return client.post("/v1/localdocs/search", json=body)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Weaviate" in error["message"]


def test_search_answers_while_weaviate_is_up(client: TestClient, fake: FakeWeaviate) -> None:
    response = search(client)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [REFERENCE]


def test_a_failing_client_is_503_with_retry_after(client: TestClient, fake: FakeWeaviate) -> None:
    fake.mode = "fail"
    assert_unavailable(search(client))


def test_a_hanging_client_is_503_without_waiting_for_it(
    client: TestClient, fake: FakeWeaviate
) -> None:
    fake.mode = "hang"
    assert_unavailable(search(client))
    # Answered while the client call was still blocked: the service did not wait for it.
    assert not fake.hang_ended.is_set()
    assert fake.searches == 1


def test_while_down_calls_fail_fast_then_work_again_once_back(
    client: TestClient, fake: FakeWeaviate
) -> None:
    fake.mode = "fail"
    fake.ready = False
    assert_unavailable(search(client))
    searches, connects = fake.searches, fake.connects
    # Known down and the readiness probe says not ready: the client is not touched again.
    assert_unavailable(search(client))
    assert (fake.searches, fake.connects) == (searches, connects)
    # Back: the next call reconnects and answers, with no restart of the service.
    fake.ready = True
    fake.mode = "answer"
    response = search(client)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [REFERENCE]
    assert fake.connects == connects + 1


def test_health_names_weaviate_when_it_is_not_ready(client: TestClient, fake: FakeWeaviate) -> None:
    fake.ready = False
    health = client.get("/health")
    assert health.status_code == 503
    assert health.headers.get("retry-after")
    assert health.json()["checks"]["weaviate"] == "unavailable"
    assert "weaviate" in health.json()["error"]["message"]
    # Down is remembered: searches fail fast without touching the client.
    searches = fake.searches
    assert_unavailable(search(client))
    assert fake.searches == searches
    fake.ready = True
    assert client.get("/health").json()["checks"]["weaviate"] == "ok"
