"""The folder watcher against real inotify events in a temporary folder, with the service (Redis
and the task queue) faked: which scans it queues for files added, changed, renamed, deleted,
a burst, and a folder that goes missing and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from llmserver_localdocs.settings import LocalDocsSettings
from llmserver_localdocs.watching import FolderWatcher


class FakeService:
    def __init__(self, collections: list[dict[str, Any]]) -> None:
        self.collections = collections
        self.scans: list[tuple[str, dict[str, Any]]] = []

    async def watched_collections(self) -> list[dict[str, Any]]:
        return self.collections

    async def queue_watched_scan(self, name: str, uid: str, options: dict[str, Any]) -> None:
        self.scans.append((name, options))


def _settings(tmp_path: Path) -> LocalDocsSettings:
    return LocalDocsSettings(
        allowed_roots=str(tmp_path),
        watch_debounce_s=0.2,
        watch_max_delay_s=1.0,
        watch_refresh_s=0.2,
        watch_max_paths=50,
    )


@contextlib.asynccontextmanager
async def _watching(service: FakeService, settings: LocalDocsSettings) -> AsyncIterator[None]:
    task = asyncio.create_task(FolderWatcher(service, settings).run())
    await asyncio.sleep(0.6)  # the first refresh schedules the watches
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def _scanned(service: FakeService) -> set[str]:
    return {path for _, options in service.scans for path in options.get("paths", [])}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    return folder


def _service(folder: Path, other: Path | None = None) -> FakeService:
    collections = [{"name": "notes", "uid": "u", "paths": [str(folder)], "unavailable": {}}]
    if other is not None:
        collections.append({"name": "other", "uid": "v", "paths": [str(other)], "unavailable": {}})
    return FakeService(collections)


async def test_added_changed_renamed_and_deleted_files_are_scanned(
    folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    service = _service(folder, other)
    async with _watching(service, _settings(tmp_path)):
        assert service.scans == []
        (folder / "new.txt").write_text("new")
        await _until(lambda: str(folder / "new.txt") in _scanned(service))
        assert {name for name, _ in service.scans} == {"notes"}  # not the other collection

        service.scans.clear()
        (folder / "old.txt").write_text("changed")
        await _until(lambda: str(folder / "old.txt") in _scanned(service))

        service.scans.clear()
        (folder / "new.txt").rename(folder / "moved.txt")
        await _until(
            lambda: {str(folder / "new.txt"), str(folder / "moved.txt")} <= _scanned(service)
        )

        service.scans.clear()
        (folder / "moved.txt").unlink()
        await _until(lambda: str(folder / "moved.txt") in _scanned(service))

        # Opening and reading a file changes nothing: no scan.
        service.scans.clear()
        (folder / "old.txt").read_text()
        await asyncio.sleep(0.6)
        assert service.scans == []


async def test_a_burst_is_debounced_into_few_scans_covering_every_file(
    folder: Path, tmp_path: Path
) -> None:
    service = _service(folder)
    settings = _settings(tmp_path).model_copy(update={"watch_max_paths": 1000})
    async with _watching(service, settings):
        for i in range(200):
            (folder / f"burst{i:03}.txt").write_text(f"file {i}")
        expected = {str(folder / f"burst{i:03}.txt") for i in range(200)}
        await _until(lambda: expected <= _scanned(service))
        await asyncio.sleep(0.5)
        # Each file written once reaches the indexer in one or two scans, not one per event.
        assert len(service.scans) <= 5, len(service.scans)


async def test_more_changed_paths_than_the_limit_make_one_full_scan(
    folder: Path, tmp_path: Path
) -> None:
    service = _service(folder)
    async with _watching(service, _settings(tmp_path)):  # watch_max_paths=50
        for i in range(120):
            (folder / f"many{i:03}.txt").write_text("x")
        await _until(lambda: any(options == {} for _, options in service.scans))


async def test_a_folder_that_goes_missing_and_comes_back(folder: Path, tmp_path: Path) -> None:
    service = _service(folder)
    async with _watching(service, _settings(tmp_path)):
        parked = tmp_path / "parked"
        folder.rename(parked)
        # The scan of the folder itself records it as unavailable (the indexer keeps its files).
        await _until(lambda: str(folder) in _scanned(service))
        service.scans.clear()
        parked.rename(folder)
        await _until(lambda: ("notes", {}) in service.scans)  # back: a full scan
        # And it is watched again.
        service.scans.clear()
        (folder / "after.txt").write_text("after")
        await _until(lambda: str(folder / "after.txt") in _scanned(service))


async def test_a_path_unavailable_at_start_that_is_there_is_scanned_in_full(
    folder: Path, tmp_path: Path
) -> None:
    service = _service(folder)
    service.collections[0]["unavailable"] = {str(folder): {"reason": "missing", "since": "x"}}
    async with _watching(service, _settings(tmp_path)):
        await _until(lambda: ("notes", {}) in service.scans)
