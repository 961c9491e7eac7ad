"""Scans that must not lose an index: a missing, unreadable or emptied root keeps its files and
says why; targeted scans (the folder watcher's changed paths) add, change, rename and delete."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from indexer_world import file_records, run_queue

from llmserver_common import docstore
from llmserver_indexer import service as service_module
from llmserver_indexer.service import Indexer


def _unavailable(world: dict[str, Any]) -> dict[str, dict[str, str]]:
    record = docstore.decode_hash(world["redis"].hgetall(docstore.collection_key("c")))
    return docstore.decode_unavailable(record)


def _indexed_folder(world: dict[str, Any], folder: Path, count: int = 3) -> None:
    """The collection's one path is `folder`, holding `count` indexed files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"note{i}.txt").write_text(f"note number {i} " * 10)
    world["redis"].hset(docstore.collection_key("c"), "paths", json.dumps([str(folder.resolve())]))
    world["indexer"].scan_collection("c", "u1")
    run_queue(world)
    assert len(file_records(world)) == count


def test_missing_root_keeps_its_files_and_resumes_without_embedding(
    world: dict[str, Any],
) -> None:
    folder: Path = world["root"] / "ceo"
    _indexed_folder(world, folder)
    indexer: Indexer = world["indexer"]
    chunks = world["store"].count("c")
    calls = world["embedder"].calls

    parked = world["root"] / "parked"
    folder.rename(parked)  # as an unmounted drive: the path is simply not there
    result = indexer.scan_collection("c", "u1")
    assert result is not None and result.removed == 0
    assert len(file_records(world)) == 3 and world["store"].count("c") == chunks
    unavailable = _unavailable(world)
    assert list(unavailable) == [str(folder.resolve())]
    assert unavailable[str(folder.resolve())]["reason"].startswith("missing")
    since = unavailable[str(folder.resolve())]["since"]
    # A later scan keeps the time it became unavailable.
    indexer.scan_collection("c", "u1")
    assert _unavailable(world)[str(folder.resolve())]["since"] == since

    parked.rename(folder)
    result = indexer.scan_collection("c", "u1")
    assert result is not None and (result.queued, result.removed) == (0, 0)
    assert _unavailable(world) == {}
    assert world["embedder"].calls == calls


def test_a_targeted_scan_of_a_missing_root_removes_nothing_and_a_return_rescans_all(
    world: dict[str, Any],
) -> None:
    folder: Path = world["root"] / "share"
    _indexed_folder(world, folder)
    indexer: Indexer = world["indexer"]
    parked = world["root"] / "parked"
    folder.rename(parked)
    # What the watcher reports when the folder goes: the folder and its files.
    changed = [str(folder / "note0.txt"), str(folder)]
    assert indexer.scan_collection("c", "u1", paths=changed).removed == 0
    assert str(folder.resolve()) in _unavailable(world)

    parked.rename(folder)
    (folder / "new.txt").write_text("written while the share was away " * 5)
    # The watcher reports only the folder's return; the scan looks at all of it.
    result = indexer.scan_collection("c", "u1", paths=[str(folder)])
    assert result is not None and result.queued == 1
    run_queue(world)
    assert set(file_records(world)) == {"note0.txt", "note1.txt", "note2.txt", "new.txt"}
    assert _unavailable(world) == {}


def test_an_empty_root_that_held_files_is_kept(world: dict[str, Any]) -> None:
    folder: Path = world["root"] / "mnt"
    _indexed_folder(world, folder)
    for path in folder.iterdir():
        path.unlink()  # a mount point with nothing mounted looks like this
    result = world["indexer"].scan_collection("c", "u1")
    assert result is not None and result.removed == 0
    assert _unavailable(world)[str(folder.resolve())]["reason"].startswith("empty")
    assert len(file_records(world)) == 3


def test_files_deleted_one_by_one_are_removed(world: dict[str, Any]) -> None:
    folder: Path = world["root"] / "notes"
    _indexed_folder(world, folder)
    (folder / "note1.txt").unlink()
    result = world["indexer"].scan_collection("c", "u1", paths=[str(folder / "note1.txt")])
    assert result is not None and result.removed == 1
    assert set(file_records(world)) == {"note0.txt", "note2.txt"}
    assert world["store"].count("c", str((folder / "note1.txt").resolve())) == 0


def test_an_unreadable_subfolder_keeps_its_files(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder: Path = world["root"] / "team"
    _indexed_folder(world, folder / "private", count=2)
    (folder / "open.txt").write_text("open to all " * 10)
    world["redis"].hset(docstore.collection_key("c"), "paths", json.dumps([str(folder.resolve())]))
    world["indexer"].scan_collection("c", "u1")
    run_queue(world)
    assert set(file_records(world)) == {"note0.txt", "note1.txt", "open.txt"}

    # Tests run as root, whom chmod does not stop: refuse the folder as the kernel would.
    private = str((folder / "private").resolve())
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == private:
            raise PermissionError(errno.EACCES, "Permission denied", private)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = world["indexer"].scan_collection("c", "u1")
    assert result is not None and result.removed == 0
    assert set(file_records(world)) == {"note0.txt", "note1.txt", "open.txt"}
    assert _unavailable(world)[private]["reason"] == "cannot be read: permission denied"

    monkeypatch.setattr(os, "scandir", real_scandir)
    assert world["indexer"].scan_collection("c", "u1").removed == 0
    assert _unavailable(world) == {}


def test_targeted_scans_add_change_rename_and_delete(world: dict[str, Any]) -> None:
    folder: Path = world["root"] / "live"
    _indexed_folder(world, folder, count=1)
    indexer: Indexer = world["indexer"]

    (folder / "added.txt").write_text("a new note " * 5)
    assert indexer.scan_collection("c", "u1", paths=[str(folder / "added.txt")]).queued == 1
    run_queue(world)

    (folder / "added.txt").write_text("a changed note " * 7)
    assert indexer.scan_collection("c", "u1", paths=[str(folder / "added.txt")]).queued == 1
    run_queue(world)
    changed = file_records(world)["added.txt"]
    assert changed.state == "indexed" and changed.size == len("a changed note " * 7)

    # Renamed: the chunks move with their vectors; nothing is extracted or embedded again.
    calls, chunks = world["embedder"].calls, world["store"].count("c")
    (folder / "added.txt").rename(folder / "renamed.txt")
    moved = [str(folder / "added.txt"), str(folder / "renamed.txt")]
    result = indexer.scan_collection("c", "u1", paths=moved)
    assert result is not None
    assert (result.queued, result.removed, result.moved) == (0, 0, 1)
    assert world["sent"] == [] and world["embedder"].calls == calls
    assert set(file_records(world)) == {"note0.txt", "renamed.txt"}
    renamed = str((folder / "renamed.txt").resolve())
    assert world["store"].count("c", renamed) == changed.chunks
    assert world["store"].count("c") == chunks
    assert file_records(world)["renamed.txt"].path == renamed

    # Moved to a subfolder with different content on the way: indexed anew, not moved.
    (folder / "deep").mkdir()
    (folder / "renamed.txt").rename(folder / "deep" / "renamed.txt")
    with (folder / "deep" / "renamed.txt").open("a") as handle:
        handle.write("and a new line")
    result = indexer.scan_collection("c", "u1", paths=[str(folder)])
    assert result is not None
    assert (result.queued, result.removed, result.moved) == (1, 1, 0)
    run_queue(world)
    assert world["store"].count("c", renamed) == 0

    # Hidden files (an editor's swap file) are not indexed, even when reported.
    (folder / ".renamed.txt.swp").write_text("swap")
    assert indexer.scan_collection("c", "u1", paths=[str(folder / ".renamed.txt.swp")]).queued == 0

    # A whole subfolder deleted: everything under it goes, nothing else.
    (folder / "deep" / "renamed.txt").rename(folder / "renamed.txt")
    indexer.scan_collection("c", "u1", paths=[str(folder)])
    sub = folder / "sub"
    sub.mkdir()
    (sub / "x.txt").write_text("in a subfolder " * 5)
    indexer.scan_collection("c", "u1", paths=[str(sub)])
    run_queue(world)
    assert "x.txt" in file_records(world)
    (sub / "x.txt").unlink()
    sub.rmdir()
    assert indexer.scan_collection("c", "u1", paths=[str(sub)]).removed == 1
    assert set(file_records(world)) == {"note0.txt", "renamed.txt"}


def test_a_file_changed_while_indexed_is_queued_again(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder: Path = world["root"] / "busy"
    _indexed_folder(world, folder, count=1)
    indexer: Indexer = world["indexer"]
    target = folder / "draft.txt"
    target.write_text("first draft " * 5)
    indexer.scan_collection("c", "u1", paths=[str(target)])
    name, args = world["sent"].pop(0)

    extract = service_module.extract

    def saved_again_meanwhile(data: bytes, *rest: Any, **kw: Any) -> Any:
        target.write_text("second draft, longer " * 9)
        # The watcher's scan of this save finds the file pending and leaves it alone...
        assert indexer.scan_collection("c", "u1", paths=[str(target)]).queued == 0
        return extract(data, *rest, **kw)

    monkeypatch.setattr(service_module, "extract", saved_again_meanwhile)
    assert indexer.index_file(*args).startswith("indexed")
    # ...so the task that read the first save notices the change and queues the file again.
    assert len(world["sent"]) == 1
    monkeypatch.setattr(service_module, "extract", extract)
    run_queue(world)
    assert file_records(world)["draft.txt"].size == len("second draft, longer " * 9)


def test_a_file_removed_while_indexed_leaves_no_chunks(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder: Path = world["root"] / "gone"
    _indexed_folder(world, folder, count=1)
    indexer: Indexer = world["indexer"]
    target = folder / "brief.txt"
    target.write_text("a short-lived note " * 5)
    indexer.scan_collection("c", "u1", paths=[str(target)])
    name, args = world["sent"].pop(0)
    extract = service_module.extract

    def deleted_meanwhile(data: bytes, *rest: Any, **kw: Any) -> Any:
        target.unlink()  # ...and the watcher's scan of the deletion removes its record
        assert indexer.scan_collection("c", "u1", paths=[str(target)]).removed == 1
        return extract(data, *rest, **kw)

    monkeypatch.setattr(service_module, "extract", deleted_meanwhile)
    assert indexer.index_file(*args) == "stale: removed while indexing"
    assert world["store"].count("c", str(target.resolve())) == 0
    assert "brief.txt" not in file_records(world)
