"""The LocalDocs API with a real Redis and the queue and Weaviate faked.

Checks the contract's status codes and the OpenAI error envelope; also that a service whose
upstreams are all down answers 503 quickly instead of hanging.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_localdocs.app import create_app
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.settings import LocalDocsSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def docs_root(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "manuals").mkdir(parents=True)
    (root / "manuals" / "a.txt").write_text("alpha")
    (tmp_path / "outside").mkdir()
    return root


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []


@pytest.fixture
def api(
    redis_url: str, docs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, FakeQueue, redis.Redis]]:
    queue = FakeQueue()

    async def send(self: LocalDocsService, task_name: str, args: list[Any]) -> None:
        queue.sent.append((task_name, args))

    async def in_weaviate(
        self: LocalDocsService, work: Any, *args: Any, timeout_s: float | None = None
    ) -> Any:
        return []  # no chunks stored: deletes remove nothing, searches find nothing

    monkeypatch.setattr(LocalDocsService, "_send", send)
    monkeypatch.setattr(LocalDocsService, "_in_weaviate", in_weaviate)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.flushdb()
    settings = LocalDocsSettings(
        redis_url=redis_url, allowed_roots=str(docs_root), rescan_interval_s=0
    )
    with TestClient(create_app(settings)) as client:
        yield client, queue, raw
    raw.close()


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_create_queues_a_scan_and_reports_indexing(api: Any, docs_root: Path) -> None:
    client, queue, _ = api
    response = client.post(
        "/v1/localdocs/collections",
        json={"name": "manuals", "paths": [str(docs_root / "manuals")]},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "manuals"
    assert body["state"] == "indexing"
    assert body["paths"] == [str((docs_root / "manuals").resolve())]
    assert queue.sent[0][0] == docstore.TASK_SCAN_COLLECTION
    assert queue.sent[0][1][0] == "manuals"
    listed = client.get("/v1/localdocs/collections").json()["data"]
    assert [entry["name"] for entry in listed] == ["manuals"]


def test_duplicate_name_is_409(api: Any, docs_root: Path) -> None:
    client, _, _ = api
    body = {"name": "dup", "paths": [str(docs_root)]}
    assert client.post("/v1/localdocs/collections", json=body).status_code == 201
    error = _error(client.post("/v1/localdocs/collections", json=body), 409)
    assert error["code"] == "collection_exists"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "bad name", "paths": ["ROOT"]}, "name"),
        ({"name": "x" * 65, "paths": ["ROOT"]}, "name"),
        ({"name": "ok", "paths": ["/etc"]}, "paths"),
        ({"name": "ok", "paths": ["ROOT/../outside"]}, "paths"),
        ({"name": "ok", "paths": ["ROOT/missing"]}, "paths"),
        ({"name": "ok", "paths": ["relative/path"]}, "paths"),
        ({"name": "ok", "paths": []}, "paths"),
        ({"name": "ok"}, "paths"),
    ],
)
def test_bad_names_and_paths_are_400(
    api: Any, docs_root: Path, body: dict[str, Any], param: str
) -> None:
    client, queue, _ = api
    body = json.loads(json.dumps(body).replace("ROOT", str(docs_root)))
    error = _error(client.post("/v1/localdocs/collections", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert queue.sent == []


def test_symlink_out_of_the_root_is_400(api: Any, docs_root: Path) -> None:
    client, _, _ = api
    (docs_root / "link").symlink_to(docs_root.parent / "outside")
    body = {"name": "linked", "paths": [str(docs_root / "link")]}
    error = _error(client.post("/v1/localdocs/collections", json=body), 400)
    assert "outside the allowed folders" in error["message"]


def test_unknown_collection_is_404_everywhere(api: Any) -> None:
    client, _, _ = api
    for method, url, body in [
        ("get", "/v1/localdocs/collections/ghost", None),
        ("get", "/v1/localdocs/collections/ghost/files", None),
        ("post", "/v1/localdocs/collections/ghost/paths", {"paths": ["/x"]}),
        ("post", "/v1/localdocs/collections/ghost/reindex", None),
        ("delete", "/v1/localdocs/collections/ghost", None),
        ("post", "/v1/localdocs/search", {"query": "q", "collections": ["ghost"]}),
        ("put", "/v1/localdocs/active", {"collections": ["ghost"]}),
    ]:
        error = _error(client.request(method, url, json=body), 404)
        assert error["code"] == "collection_not_found", url


def test_files_and_progress_come_from_the_worker_records(api: Any, docs_root: Path) -> None:
    client, _, raw = api
    client.post("/v1/localdocs/collections", json={"name": "prog", "paths": [str(docs_root)]})
    records = [
        FileRecord(path="/d/a.pdf", state="indexed", chunks=5, pages=3, title="A", author="X"),
        FileRecord(path="/d/b.bin", state="failed", error="no text could be extracted"),
    ]
    for record in records:
        raw.hset(docstore.files_key("prog"), record.path, record.to_json())
    raw.hset(docstore.collection_key("prog"), "scan_state", docstore.SCAN_DONE)
    collection = client.get("/v1/localdocs/collections/prog").json()
    assert collection["state"] == "ready"
    assert (collection["files_total"], collection["files_indexed"]) == (2, 1)
    assert (collection["files_failed"], collection["chunks"]) == (1, 5)
    files = client.get("/v1/localdocs/collections/prog/files").json()["data"]
    assert [entry["path"] for entry in files] == ["/d/a.pdf", "/d/b.bin"]
    assert files[0]["pages"] == 3 and files[0]["title"] == "A"
    assert files[1]["state"] == "failed" and files[1]["error"]


def test_reindex_add_paths_and_delete(api: Any, docs_root: Path) -> None:
    client, queue, raw = api
    client.post("/v1/localdocs/collections", json={"name": "ops", "paths": [str(docs_root)]})
    extra = docs_root.parent / "docs" / "manuals"
    response = client.post("/v1/localdocs/collections/ops/paths", json={"paths": [str(extra)]})
    assert response.status_code == 200, response.text
    assert response.json()["paths"] == [str(docs_root.resolve()), str(extra.resolve())]
    assert client.post("/v1/localdocs/collections/ops/reindex").status_code == 200
    assert queue.sent[-1][1][2] == {"retry_failed": True}
    client.put("/v1/localdocs/active", json={"collections": ["ops"]})
    deleted = client.delete("/v1/localdocs/collections/ops")
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert client.get("/v1/localdocs/collections/ops").status_code == 404
    assert not raw.exists(docstore.files_key("ops"))
    assert client.get("/v1/localdocs/active").json()["collections"] == []


def test_active_set_round_trips_and_survives_a_new_app(
    api: Any, docs_root: Path, redis_url: str
) -> None:
    client, _, _ = api
    client.post("/v1/localdocs/collections", json={"name": "one", "paths": [str(docs_root)]})
    put = client.put("/v1/localdocs/active", json={"collections": ["one", "one"]})
    assert put.json() == {"collections": ["one"]}
    settings = LocalDocsSettings(
        redis_url=redis_url, allowed_roots=str(docs_root), rescan_interval_s=0
    )
    with TestClient(create_app(settings)) as fresh:
        assert fresh.get("/v1/localdocs/active").json() == {"collections": ["one"]}
    _error(client.put("/v1/localdocs/active", json={"collections": ["bad name"]}), 400)
    _error(client.put("/v1/localdocs/active", json={}), 400)


def test_search_validates_its_input(api: Any, docs_root: Path) -> None:
    client, _, _ = api
    client.post("/v1/localdocs/collections", json={"name": "s", "paths": [str(docs_root)]})
    _error(client.post("/v1/localdocs/search", json={"collections": ["s"]}), 400)
    _error(client.post("/v1/localdocs/search", json={"query": "", "collections": ["s"]}), 400)
    _error(client.post("/v1/localdocs/search", json={"query": "q", "k": 0}), 400)
    _error(client.post("/v1/localdocs/search", json={"query": "q", "k": 10_000}), 400)
    _error(client.post("/v1/localdocs/search", content=b"{not json"), 400)
    # No collections and no active set: nothing to search, not an error.
    assert client.post("/v1/localdocs/search", json={"query": "q"}).json()["data"] == []


def test_upstreams_down_give_503_not_a_hang(docs_root: Path) -> None:
    dead = _free_port()
    settings = LocalDocsSettings(
        redis_url=f"redis://127.0.0.1:{dead}/0",
        weaviate_url=f"http://127.0.0.1:{dead}",
        weaviate_grpc_port=dead,
        inference_url=f"http://127.0.0.1:{dead}",
        allowed_roots=str(docs_root),
        rescan_interval_s=0,
        upstream_timeout_s=2,
    )
    started = time.monotonic()
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"] == {"redis": "unavailable", "weaviate": "unavailable"}
        assert health.json()["error"]["type"] == "service_unavailable"
        error = _error(client.get("/v1/localdocs/collections"), 503)
        assert "Redis" in error["message"]
        body = {"name": "ok", "paths": [str(docs_root)]}
        _error(client.post("/v1/localdocs/collections", json=body), 503)
    assert time.monotonic() - started < 60
