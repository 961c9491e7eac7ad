"""Live folders: file system events on every collection's paths become scans of what changed.

watchdog's observer (inotify on Linux) reports events from its own thread; they are handed to
the event loop, grouped per collection and sent as one scan task of the changed paths once the
folder has been quiet for `watch_debounce_s` (or `watch_max_delay_s` after the first event, so
a long copy is picked up while it runs). The indexer decides what changed (size, modification
time, content hash), so a burst queues each file once and unchanged content is not embedded.

Paths that are missing (a drive not mounted, a share down) cannot be watched: they are looked
at every `watch_refresh_s`, and their return (or a new folder mounted over them) queues a full
scan. The periodic rescan stays as the fallback for file systems without events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import (
    DirModifiedEvent,
    EventsLostEvent,
    FileClosedNoWriteEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from llmserver_common.errors import APIError
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.settings import LocalDocsSettings

logger = logging.getLogger(__name__)

# Events that change nothing on disk.
_IGNORED_EVENTS = (FileOpenedEvent, FileClosedNoWriteEvent, DirModifiedEvent)
_ALL = "*"  # in a pending set: scan the whole collection


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _identity(path: str) -> tuple[int, int] | None:
    """Which folder is at `path` now (device, inode): a remount or a folder put back differs."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


@dataclass
class _Watched:
    """One watched folder: the watch, and which folder it was when scheduled."""

    watch: ObservedWatch | None
    identity: tuple[int, int] | None
    recursive: bool


@dataclass
class _Pending:
    paths: set[str] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0


class _Forward(FileSystemEventHandler):
    """Runs in watchdog's thread: hand each changed path to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
        self._loop = loop
        self._queue = queue

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, _IGNORED_EVENTS):
            return
        if isinstance(event, EventsLostEvent):
            paths = [_ALL]  # the kernel's queue overflowed: only a full scan is safe
        else:
            paths = [os.fsdecode(event.src_path)]
            if event.dest_path:
                paths.append(os.fsdecode(event.dest_path))
        for path in paths:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._queue.put_nowait, path)


async def watch_folders(service: LocalDocsService, settings: LocalDocsSettings) -> None:
    """The folder watcher for the life of the app, started again if it ever fails."""
    while True:
        try:
            await FolderWatcher(service, settings).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the folder watcher failed; starting it again in 5 s")
            await asyncio.sleep(5)


class FolderWatcher:
    def __init__(self, service: LocalDocsService, settings: LocalDocsSettings) -> None:
        self.service = service
        self.settings = settings
        self._observer: BaseObserver | None = None
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self._watched: dict[str, _Watched] = {}
        # name -> (uid, paths) of every collection, as of the last refresh.
        self._collections: dict[str, tuple[str, list[str]]] = {}
        self._pending: dict[str, _Pending] = {}
        self._started = False

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._observer = Observer()
        self._handler = _Forward(loop, self._events)
        self._observer.start()
        next_refresh = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_refresh:
                    try:
                        await self.refresh()
                    except Exception as exc:  # Redis down: keep the watches we have
                        logger.warning("folder watch refresh skipped: %s", type(exc).__name__)
                    next_refresh = time.monotonic() + self.settings.watch_refresh_s
                await self._flush_due()
                wait = max(0.05, min(next_refresh, self._next_flush()) - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    path = await asyncio.wait_for(self._events.get(), timeout=wait)
                    self._note(path)
                    while not self._events.empty():
                        self._note(self._events.get_nowait())
        finally:
            self._observer.stop()
            await asyncio.to_thread(self._observer.join, 5)

    # -- which folders are watched --------------------------------------------------------

    async def refresh(self) -> None:
        """Follow the collections as they are now: watch new paths, drop removed ones, and
        notice paths that went missing or came back."""
        collections = await self.service.watched_collections()
        self._collections = {c["name"]: (c["uid"], c["paths"]) for c in collections}
        wanted: dict[str, list[str]] = {}  # folder to watch -> collections
        recursive: dict[str, bool] = {}  # a file's folder is watched, not what lies under it
        for name, (_, paths) in self._collections.items():
            for path in paths:
                is_file = os.path.isfile(path)
                folder = os.path.dirname(path) if is_file else path
                wanted.setdefault(folder, []).append(name)
                recursive[folder] = recursive.get(folder, False) or not is_file

        for folder in list(self._watched):
            if folder not in wanted:
                self._unschedule(folder)
                del self._watched[folder]

        for folder, names in wanted.items():
            identity = _identity(folder)
            known = self._watched.get(folder)
            if (
                known is not None
                and known.identity == identity
                and known.recursive == recursive[folder]
            ):
                continue
            if known is not None:
                self._unschedule(folder)
            watch = self._schedule(folder, recursive[folder]) if identity is not None else None
            self._watched[folder] = _Watched(watch, identity, recursive[folder])
            if known is not None and known.identity == identity:
                continue  # only how deep it is watched changed
            if not self._started:
                continue  # at start the indexer's own recovery scans everything
            if identity is None:
                logger.warning("watched folder %s is gone", folder)
                for name in names:
                    self._add(name, folder)  # the scan records it as unavailable
            else:
                logger.info("watched folder %s is back", folder)
                for name in names:
                    self._add(name, _ALL)  # changes while it was away were not seen
        if not self._started:
            self._started = True
            # Paths recorded unavailable that are there now: look again.
            for collection in collections:
                if any(_identity(p) for p in collection["unavailable"]):
                    self._add(collection["name"], _ALL)

    def _schedule(self, folder: str, recursive: bool) -> ObservedWatch | None:
        assert self._observer is not None
        try:
            return self._observer.schedule(self._handler, folder, recursive=recursive)
        except OSError as exc:
            # Out of inotify watches, or a file system without events: the periodic rescan
            # still covers this folder.
            logger.warning("cannot watch %s (%s); it is rescanned periodically", folder, exc)
            return None

    def _unschedule(self, folder: str) -> None:
        watched = self._watched.get(folder)
        if watched is None or watched.watch is None or self._observer is None:
            return
        with contextlib.suppress(KeyError, OSError):
            self._observer.unschedule(watched.watch)

    # -- debouncing -----------------------------------------------------------------------

    def _note(self, path: str) -> None:
        if path == _ALL:
            for name in self._collections:
                self._add(name, _ALL)
            return
        for name, (_, roots) in self._collections.items():
            if any(_within(path, root) for root in roots):
                self._add(name, path)

    def _add(self, name: str, path: str) -> None:
        now = time.monotonic()
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = _Pending(first=now)
        pending.paths.add(path)
        pending.last = now

    def _next_flush(self) -> float:
        if not self._pending:
            return float("inf")
        return min(
            min(p.last + self.settings.watch_debounce_s, p.first + self.settings.watch_max_delay_s)
            for p in self._pending.values()
        )

    async def _flush_due(self) -> None:
        now = time.monotonic()
        for name, pending in list(self._pending.items()):
            quiet = now - pending.last >= self.settings.watch_debounce_s
            overdue = now - pending.first >= self.settings.watch_max_delay_s
            if not (quiet or overdue):
                continue
            known = self._collections.get(name)
            if known is None:
                del self._pending[name]  # deleted meanwhile
                continue
            options = self._scan_options(pending.paths)
            try:
                await self.service.queue_watched_scan(name, known[0], options)
            except APIError:
                pending.first = pending.last = now  # the queue is down: try again later
                continue
            del self._pending[name]

    def _scan_options(self, paths: set[str]) -> dict[str, Any]:
        if _ALL in paths or len(paths) > self.settings.watch_max_paths:
            return {}
        # A folder reported covers what lies under it.
        ordered = sorted(paths)
        kept: list[str] = []
        for path in ordered:
            if not any(_within(path, folder) for folder in kept):
                kept.append(path)
        return {"paths": kept}
