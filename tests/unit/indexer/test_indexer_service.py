"""The indexer's scan and per-file logic against a real Redis, with Tika, inference and
Weaviate faked: new, changed, removed and failed files; stale tasks; no duplicate chunks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from indexer_world import file_records, run_queue

from llmserver_common import docstore
from llmserver_indexer.service import Indexer


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
    progress = docstore.summarize_progress("done", file_records(world).values())
    assert progress["state"] == "indexing"
    run_queue(world)
    records = file_records(world)
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
    assert run_queue(world) == ["unchanged"]
    assert world["embedder"].calls == calls
    assert world["store"].count("c") == total

    # Changed: old chunks replaced, not added to.
    (root / "a.txt").write_text("charlie " * 5)
    indexer.scan_collection("c", "u1")
    run_queue(world)
    new_a = file_records(world)["a.txt"].chunks
    assert world["store"].count("c", str((root / "a.txt").resolve())) == new_a
    assert world["store"].count("c") == new_a + records["b.txt"].chunks

    # Removed: record and chunks dropped.
    (root / "sub" / "b.txt").unlink()
    assert indexer.scan_collection("c", "u1").removed == 1
    assert "b.txt" not in file_records(world)
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
    outcomes = run_queue(world)
    assert outcomes[-1].startswith("indexed")
    assert indexer.index_file(*world_args_for(world, "a.txt")) == "already indexed"
    # A task for a collection deleted (or re-created under the same name) is skipped.
    assert indexer.index_file("c", "other-uid", args[2], args[3]) == "stale: collection gone"


def world_args_for(world: dict[str, Any], file_name: str) -> list[Any]:
    record = file_records(world)[file_name]
    return ["c", "u1", record.path, record.generation]


def test_symlinks_out_of_the_roots_are_not_indexed(world: dict[str, Any], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret " * 10)
    (world["root"] / "link.txt").symlink_to(outside / "secret.txt")
    (world["root"] / "linkdir").symlink_to(outside)
    (world["root"] / "ok.txt").write_text("fine " * 10)
    world["indexer"].scan_collection("c", "u1")
    assert set(file_records(world)) == {"ok.txt"}


def test_recover_rescans_every_collection(world: dict[str, Any]) -> None:
    assert world["indexer"].recover() == 1
    name, args = world["sent"][0]
    assert name == docstore.TASK_SCAN_COLLECTION
    assert args == ["c", "u1", {"requeue_pending": True}]
