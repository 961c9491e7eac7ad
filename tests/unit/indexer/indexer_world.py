"""The indexer's world in unit tests: a real Redis, with Tika, inference and Weaviate faked."""

from __future__ import annotations

import json
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

    def move(self, collection: str, old: str, new: str, expected: int) -> bool:
        mine = [
            (uid, props)
            for uid, props in self.objects.items()
            if (props["collection"], props["path"]) == (collection, old)
        ]
        if len(mine) != expected:
            return False
        for uid, props in mine:
            del self.objects[uid]
            moved = {**props, "path": new, "file": Path(new).name}
            key = docstore.chunk_uuid(collection, new, props["chunk_index"], props["content_hash"])
            self.objects[key] = moved
        return True


class FakeEmbedder:
    model: str | None = None

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str], *, batch_size: int, input_type: str = "document") -> Any:
        self.calls += 1
        return [[float(len(text)), 1.0] for text in texts], "fake-embed"


def make_world(
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
    monkeypatch.setattr(
        docstore, "move_file_chunks", lambda coll, c, o, n, e: coll.move(c, o, n, e)
    )

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


def run_queue(world: dict[str, Any]) -> list[str]:
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


def file_records(world: dict[str, Any]) -> dict[str, FileRecord]:
    raw = world["redis"].hgetall(docstore.files_key("c"))
    return {Path(path).name: FileRecord.from_json(value) for path, value in raw.items()}
