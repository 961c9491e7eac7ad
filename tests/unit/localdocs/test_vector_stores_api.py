"""The vector stores API with a real Redis and the queue and Weaviate faked: what the indexer
writes in the collection's file records is what a vector store file's status says; attaching
links the upload into the store's folder and queues a scan of the link; a queue that is down
does not lose an attachment; detaching takes the file's chunks out at once."""

from __future__ import annotations

import os
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
from llmserver_localdocs.upstreams import unavailable


class Fakes:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.weaviate: list[tuple[str, tuple[Any, ...]]] = []
        self.queue_down = False


@pytest.fixture
def api(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Fakes, redis.Redis, Path]]:
    fakes = Fakes()

    async def send(self: LocalDocsService, task_name: str, args: list[Any]) -> None:
        if fakes.queue_down:
            raise unavailable("The indexing queue (Redis)")
        fakes.sent.append((task_name, args))

    async def in_weaviate(
        self: LocalDocsService, work: Any, *args: Any, timeout_s: float | None = None
    ) -> Any:
        fakes.weaviate.append((getattr(work, "__name__", "?"), args))
        return []

    monkeypatch.setattr(LocalDocsService, "_send", send)
    monkeypatch.setattr(LocalDocsService, "_in_weaviate", in_weaviate)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.flushdb()
    openai_dir = tmp_path / "openai"
    settings = LocalDocsSettings(
        redis_url=redis_url, openai_dir=openai_dir, rescan_interval_s=0, watch=False
    )
    with TestClient(create_app(settings)) as client:
        yield client, fakes, raw, openai_dir
    raw.close()


def _upload(client: TestClient, name: str = "notes.txt", data: bytes = b"hello") -> str:
    reply = client.post("/v1/files", files={"file": (name, data)}, data={"purpose": "assistants"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def _index(raw: redis.Redis, store_id: str, upload: Path, **fields: Any) -> None:
    """What the indexer writes when it is done with a file."""
    record = FileRecord(path=str(upload), **fields)
    raw.hset(docstore.files_key(store_id), str(upload), record.to_json())


def test_status_follows_the_collection_file_records(api: Any) -> None:
    client, fakes, raw, openai_dir = api
    file_id = _upload(client, data=b"0123456789")
    store = client.post("/v1/vector_stores", json={"name": "s", "file_ids": [file_id]}).json()
    store_id = store["id"]
    assert store["status"] == "in_progress" and store["file_counts"]["in_progress"] == 1
    # The collection of the same name indexes the store's folder, where the upload is linked.
    link = openai_dir / "vector_stores" / store_id / f"{file_id}--notes.txt"
    upload = openai_dir / "files" / file_id / "notes.txt"
    assert link.is_symlink() and link.resolve() == upload.resolve()
    assert not os.path.isabs(os.readlink(link))  # relative: the same in every container
    assert fakes.sent[-1][0] == docstore.TASK_SCAN_COLLECTION and fakes.sent[-1][1][0] == store_id

    url = f"/v1/vector_stores/{store_id}/files/{file_id}"
    _index(raw, store_id, upload, state=docstore.FILE_PENDING)
    assert client.get(url).json()["status"] == "in_progress"
    _index(raw, store_id, upload, state=docstore.FILE_INDEXED, chunks=1)
    raw.hset(docstore.collection_key(store_id), "scan_state", docstore.SCAN_DONE)
    done = client.get(url)
    assert done.json()["status"] == "completed" and done.json()["last_error"] is None
    assert done.headers["openai-poll-after-ms"] == "250"
    ready = client.get(f"/v1/vector_stores/{store_id}").json()
    assert ready["status"] == "completed" and ready["usage_bytes"] == 10

    _index(raw, store_id, upload, state=docstore.FILE_FAILED, error="no text could be extracted")
    failed = client.get(url).json()
    assert failed["status"] == "failed"
    assert failed["last_error"] == {
        "code": "unsupported_file",
        "message": "no text could be extracted",
    }
    listed = client.get(f"/v1/vector_stores/{store_id}/files?filter=failed").json()
    assert [f["id"] for f in listed["data"]] == [file_id]


def test_an_upload_missing_from_disk_is_a_failed_file(api: Any) -> None:
    client, _, _, openai_dir = api
    file_id = _upload(client)
    store_id = client.post("/v1/vector_stores", json={"file_ids": [file_id]}).json()["id"]
    (openai_dir / "files" / file_id / "notes.txt").unlink()
    result = client.get(f"/v1/vector_stores/{store_id}/files/{file_id}").json()
    assert result["status"] == "failed" and result["last_error"]["code"] == "invalid_file"


def test_attaching_while_the_queue_is_down_keeps_the_attachment(api: Any) -> None:
    client, fakes, raw, openai_dir = api
    store_id = client.post("/v1/vector_stores", json={"name": "s"}).json()["id"]
    file_id = _upload(client)
    fakes.queue_down = True
    attached = client.post(f"/v1/vector_stores/{store_id}/files", json={"file_id": file_id})
    assert attached.status_code == 200, attached.text
    assert attached.json()["status"] == "in_progress"
    assert (openai_dir / "vector_stores" / store_id / f"{file_id}--notes.txt").is_symlink()
    # The collection says its scan could not be queued (a reindex or the rescan catches up).
    assert raw.hget(docstore.collection_key(store_id), "scan_state") == docstore.SCAN_ERROR


def test_detaching_takes_the_chunks_out_at_once(api: Any) -> None:
    client, fakes, raw, openai_dir = api
    file_id = _upload(client)
    store_id = client.post("/v1/vector_stores", json={"file_ids": [file_id]}).json()["id"]
    upload = openai_dir / "files" / file_id / "notes.txt"
    _index(raw, store_id, upload, state=docstore.FILE_INDEXED, chunks=1)
    fakes.weaviate.clear()
    deleted = client.delete(f"/v1/vector_stores/{store_id}/files/{file_id}")
    assert deleted.json() == {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
    assert ("delete_file_chunks", (store_id, str(upload))) in fakes.weaviate
    assert not raw.hexists(docstore.files_key(store_id), str(upload))
    assert not (openai_dir / "vector_stores" / store_id / f"{file_id}--notes.txt").exists()
    assert upload.exists()  # the file itself stays until it is deleted
    assert client.get(f"/v1/vector_stores/{store_id}/files/{file_id}").status_code == 404


def test_uploads_are_refused_when_not_configured(redis_url: str) -> None:
    settings = LocalDocsSettings(redis_url=redis_url, rescan_interval_s=0, watch=False)
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/v1/files", files={"file": ("a.txt", b"x")}, data={"purpose": "assistants"}
        )
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "uploads_not_configured"


def test_an_expired_store_says_so_and_is_not_searched(api: Any) -> None:
    client, _, raw, _ = api
    body = {"name": "s", "expires_after": {"anchor": "last_active_at", "days": 1}}
    store = client.post("/v1/vector_stores", json=body).json()
    assert store["status"] != "expired"
    assert store["expires_at"] == store["last_active_at"] + 86_400
    raw.hset(f"llmserver:openai:vector_store:{store['id']}", "last_active_at", "1000")
    expired = client.get(f"/v1/vector_stores/{store['id']}").json()
    assert expired["status"] == "expired" and expired["expires_at"] == 1000 + 86_400
    refused = client.post(f"/v1/vector_stores/{store['id']}/search", json={"query": "x"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "vector_store_expired"
