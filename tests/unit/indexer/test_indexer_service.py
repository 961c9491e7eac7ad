"""The indexer's scan and per-file logic against a real Redis, with Tika, inference and
Weaviate faked: new, changed, removed and failed files; stale tasks; no duplicate chunks."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_indexer import service as service_module
from llmserver_indexer.extract import ExtractedDocument, FileProblem
from llmserver_indexer.service import Indexer
from llmserver_indexer.settings import IndexerSettings


class FakeChunkStore:
    """Weaviate's chunks collection reduced to a dict keyed by the deterministic ids."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def write(self, doc: docstore.DocumentInfo, chunks: list[docstore.Chunk]) -> None:
        for chunk in chunks:
            uid = docstore.chunk_uuid(doc.collection, doc.path, chunk.index, doc.content_hash)
            self.objects[uid] = docstore.chunk_properties(doc, chunk)
        # What docstore.write_chunks deletes: older versions and surplus indices of the file.
        for uid, props in list(self.objects.items()):
            if (props["collection"], props["path"]) == (doc.collection, doc.path) and (
                props["content_hash"] != doc.content_hash or props["chunk_index"] >= len(chunks)
            ):
                del self.objects[uid]

    def count(self, collection: str, path: str | None = None) -> int:
        return sum(
            1
            for props in self.objects.values()
            if props["collection"] == collection and (path is None or props["path"] == path)
        )

    def delete_file(self, collection: str, path: str) -> int:
        doomed = [
            uid
            for uid, props in self.objects.items()
            if (props["collection"], props["path"]) == (collection, path)
        ]
        for uid in doomed:
            del self.objects[uid]
        return len(doomed)


class FakeEmbedder:
    model: str | None = None

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str], *, batch_size: int, input_type: str = "document") -> Any:
        self.calls += 1
        return [[float(len(text)), 1.0] for text in texts], "fake-embed"


@pytest.fixture
def world(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    root = tmp_path / "docs"
    root.mkdir()
    store = FakeChunkStore()
    embedder = FakeEmbedder()
    sent: list[tuple[str, list[Any]]] = []

    def fake_extract(data: bytes, filename: str, tika_url: str, timeout_s: float) -> Any:
        if data.startswith(b"CORRUPT"):
            raise FileProblem("Tika could not parse the file: bad trailer")
        text = data.decode()
        return ExtractedDocument(
            segments=[(None, text)], title=None, author=None, created=None, pages=None,
            content_type="text/plain",
        )  # fmt: skip

    monkeypatch.setattr(service_module, "extract", fake_extract)
    monkeypatch.setattr(Indexer, "chunks", property(lambda self: store))
    monkeypatch.setattr(Indexer, "embedder", property(lambda self: embedder))
    monkeypatch.setattr(
        docstore,
        "write_chunks",
        lambda coll, doc, chunks, vectors, batch_size: coll.write(doc, list(chunks)),
    )
    monkeypatch.setattr(docstore, "count_chunks", lambda coll, c, p=None: coll.count(c, p))
    monkeypatch.setattr(docstore, "delete_file_chunks", lambda coll, c, p: coll.delete_file(c, p))

    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.flushdb()
    settings = IndexerSettings(
        redis_url=redis_url, allowed_roots=str(root), chunk_size=64, chunk_overlap=8,
        max_file_bytes=10_000,
    )  # fmt: skip
    indexer = Indexer(settings, lambda name, args: sent.append((name, args)))
    raw.sadd(docstore.COLLECTIONS_SET_KEY, "c")
    raw.hset(
        docstore.collection_key("c"),
        mapping={
            "name": "c",
            "uid": "u1",
            "paths": json.dumps([str(root)]),
            "scan_state": "scanning",
        },
    )
    yield {"root": root, "store": store, "sent": sent, "indexer": indexer, "redis": raw,
           "embedder": embedder}  # fmt: skip
    indexer.close()
    raw.close()


def _run_queue(world: dict[str, Any]) -> list[str]:
    """Run every queued index task, as a worker would."""
    outcomes = []
    while world["sent"]:
        name, args = world["sent"].pop(0)
        assert name == docstore.TASK_INDEX_FILE
        try:
            outcomes.append(world["indexer"].index_file(*args))
        except FileProblem as exc:
            world["indexer"].fail_file(args[0], args[2], args[3], str(exc))
            outcomes.append("failed")
    return outcomes


def _records(world: dict[str, Any]) -> dict[str, FileRecord]:
    raw = world["redis"].hgetall(docstore.files_key("c"))
    return {Path(path).name: FileRecord.from_json(value) for path, value in raw.items()}


def test_scan_index_reindex_change_and_remove(world: dict[str, Any]) -> None:
    root: Path = world["root"]
    (root / "a.txt").write_text("alpha " * 40)
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("bravo " * 10)
    (root / ".hidden").write_text("secret")
    (root / "bad.pdf").write_bytes(b"CORRUPT")
    (root / "huge.txt").write_text("x " * 6000)
    indexer: Indexer = world["indexer"]

    result = indexer.scan_collection("c", "u1")
    assert result is not None and result.queued == 4
    progress = docstore.summarize_progress("done", _records(world).values())
    assert progress["state"] == "indexing"
    _run_queue(world)
    records = _records(world)
    assert set(records) == {"a.txt", "b.txt", "bad.pdf", "huge.txt"}
    assert records["a.txt"].state == "indexed" and records["a.txt"].chunks >= 3
    assert records["bad.pdf"].state == "failed" and "bad trailer" in records["bad.pdf"].error
    assert records["huge.txt"].state == "failed" and "larger than" in records["huge.txt"].error
    total = records["a.txt"].chunks + records["b.txt"].chunks
    assert world["store"].count("c") == total
    assert world["redis"].hget(docstore.collection_key("c"), "embedding_model") == "fake-embed"

    # Unchanged: nothing queued, nothing written again.
    calls = world["embedder"].calls
    assert indexer.scan_collection("c", "u1").queued == 0
    assert world["embedder"].calls == calls

    # Touched but identical content: re-queued, but no new embedding and the same chunks.
    os.utime(root / "a.txt", (time.time() + 5, time.time() + 5))
    assert indexer.scan_collection("c", "u1").queued == 1
    assert _run_queue(world) == ["unchanged"]
    assert world["embedder"].calls == calls
    assert world["store"].count("c") == total

    # Changed: old chunks replaced, not added to.
    (root / "a.txt").write_text("charlie " * 5)
    indexer.scan_collection("c", "u1")
    _run_queue(world)
    new_a = _records(world)["a.txt"].chunks
    assert world["store"].count("c", str((root / "a.txt").resolve())) == new_a
    assert world["store"].count("c") == new_a + records["b.txt"].chunks

    # Removed: record and chunks dropped.
    (root / "sub" / "b.txt").unlink()
    assert indexer.scan_collection("c", "u1").removed == 1
    assert "b.txt" not in _records(world)
    assert world["store"].count("c") == new_a

    # Failed files are retried only when asked (reindex), or when they change.
    assert indexer.scan_collection("c", "u1").queued == 0
    assert indexer.scan_collection("c", "u1", retry_failed=True).queued == 2


def test_stale_tasks_change_nothing(world: dict[str, Any]) -> None:
    root: Path = world["root"]
    (root / "a.txt").write_text("alpha " * 20)
    indexer: Indexer = world["indexer"]
    indexer.scan_collection("c", "u1")
    (_, args) = world["sent"][0]
    # A recovery rescan re-queues the pending file with a new generation...
    indexer.scan_collection("c", "u1", requeue_pending=True)
    assert len(world["sent"]) == 2
    # ...so the first message is stale, and the second does the work once.
    assert indexer.index_file(*args) == "stale: superseded"
    outcomes = _run_queue(world)
    assert outcomes[-1].startswith("indexed")
    assert indexer.index_file(*world_args_for(world, "a.txt")) == "already indexed"
    # A task for a collection deleted (or re-created under the same name) is skipped.
    assert indexer.index_file("c", "other-uid", args[2], args[3]) == "stale: collection gone"


def world_args_for(world: dict[str, Any], file_name: str) -> list[Any]:
    record = _records(world)[file_name]
    return ["c", "u1", record.path, record.generation]


def test_symlinks_out_of_the_roots_are_not_indexed(world: dict[str, Any], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret " * 10)
    (world["root"] / "link.txt").symlink_to(outside / "secret.txt")
    (world["root"] / "linkdir").symlink_to(outside)
    (world["root"] / "ok.txt").write_text("fine " * 10)
    world["indexer"].scan_collection("c", "u1")
    assert set(_records(world)) == {"ok.txt"}


def test_recover_rescans_every_collection(world: dict[str, Any]) -> None:
    assert world["indexer"].recover() == 1
    name, args = world["sent"][0]
    assert name == docstore.TASK_SCAN_COLLECTION
    assert args == ["c", "u1", {"requeue_pending": True}]
