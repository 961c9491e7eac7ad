"""Scanning a collection: compare what is on disk (scanning.Surveyor) with the file records,
queue new and changed files, drop removed ones, move renamed ones, record unavailable paths.

A mixin of llmserver_indexer.service.Indexer, which provides the clients and the records.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from weaviate.collections import Collection

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_indexer.scanning import Survey, Surveyor, is_within
from llmserver_indexer.settings import IndexerSettings

logger = logging.getLogger(__name__)

# Queue a task: (task name, args). Celery's send_task in production, a list in unit tests.
SendTask = Callable[[str, list[Any]], None]


@dataclass
class ScanResult:
    queued: int
    removed: int
    unchanged: int
    skipped: int
    moved: int = 0


class CollectionScanning:
    """The scan task's logic; the Indexer it is mixed into provides what is declared here."""

    settings: IndexerSettings
    redis: redis.Redis
    chunks: Collection
    _send_task: SendTask
    _surveyor: Surveyor

    def _collection(self, name: str, uid: str) -> dict[str, str] | None:
        raise NotImplementedError

    def scan_collection(
        self,
        name: str,
        uid: str,
        *,
        retry_failed: bool = False,
        requeue_pending: bool = False,
        paths: list[str] | None = None,
    ) -> ScanResult | None:
        """Queue new and changed files, drop removed ones; `requeue_pending` recovers work
        that a dead worker held, `retry_failed` gives failed files another go. `paths` (the
        folder watcher's changed paths) limits the scan to those paths and what lies under
        them; a full scan looks at every path of the collection.

        Files under a path that cannot be looked at (missing, unreadable, or emptied where
        files were indexed) are kept, and the path is recorded as unavailable with its reason.
        """
        collection = self._collection(name, uid)
        if collection is None:
            logger.info("scan of %s skipped: the collection is gone", name)
            return None
        key = docstore.files_key(name)
        existing = {
            path: FileRecord.from_json(raw) for path, raw in self.redis.hgetall(key).items()
        }
        roots: list[str] = json.loads(collection.get("paths", "[]"))
        before = docstore.decode_unavailable(collection)

        def indexed_under(folder: str) -> int:
            return sum(
                1
                for path, record in existing.items()
                if record.state == docstore.FILE_INDEXED and is_within(path, folder)
            )

        survey = self._surveyor.survey(roots, paths, indexed_under=indexed_under)
        if paths is not None and any(
            root in before and root not in survey.unavailable for root in roots
        ):
            # A path is back: what changed while it was away was never reported.
            logger.info("a path of %s is available again: scanning all of it", name)
            paths = None
            survey = self._surveyor.survey(roots, None, indexed_under=indexed_under)

        in_scope = (
            set(existing)
            if paths is None
            else {path for path in existing if any(is_within(path, p) for p in paths)}
        )
        gone = [path for path in sorted(in_scope - survey.found.keys()) if not survey.hides(path)]
        moved = self._move_renamed(name, existing, gone, survey.found)
        removed = 0
        for path in gone:
            if path in moved:
                continue
            docstore.delete_file_chunks(self.chunks, name, path)
            self.redis.hdel(key, path)
            removed += 1
        for old, new in moved.items():
            existing[new] = existing.pop(old)

        queued = unchanged = 0
        skipped = survey.over_limit
        room = self.settings.max_files_per_collection - (len(existing) - removed)
        to_send: list[tuple[str, str]] = []
        for path, stat in survey.found.items():
            record = existing.get(path)
            if record is None:
                if room <= 0:
                    skipped += 1
                    continue
                room -= 1
                changed = True
            elif record.state == docstore.FILE_PENDING:
                # Queued already; re-queueing would only make the running task stale.
                changed = requeue_pending
            else:
                changed = (
                    record.mtime != stat.st_mtime
                    or record.size != stat.st_size
                    or (retry_failed and record.state == docstore.FILE_FAILED)
                )
            if not changed:
                unchanged += 1
                continue
            to_send.append((path, self._mark_pending(name, path, record)))
            queued += 1
        # Records first, then tasks: the collection never looks ready while work is queued.
        for path, generation in to_send:
            self._send_task(docstore.TASK_INDEX_FILE, [name, uid, path, generation])

        self._record_scan(name, uid, roots, paths, before, survey, skipped)
        logger.info(
            "scanned %s%s: %d queued, %d removed, %d unchanged, %d over the limit, %d unavailable",
            name,
            "" if paths is None else f" ({len(paths)} changed paths)",
            queued,
            removed,
            unchanged,
            skipped,
            len(survey.unavailable),
        )
        return ScanResult(
            queued=queued, removed=removed, unchanged=unchanged, skipped=skipped, moved=len(moved)
        )

    def _move_renamed(
        self,
        name: str,
        existing: dict[str, FileRecord],
        gone: list[str],
        found: dict[str, os.stat_result],
    ) -> dict[str, str]:
        """Files renamed (or moved) within the collection: a path gone and a new one with the
        same size, modification time and content. Their chunks move to the new path with their
        vectors, so nothing is extracted or embedded again. Returns {old path: new path}."""
        by_stat: dict[tuple[int, float], list[str]] = {}
        for path in gone:
            record = existing[path]
            if record.state == docstore.FILE_INDEXED and record.content_hash and record.chunks:
                by_stat.setdefault((record.size, record.mtime), []).append(path)
        moved: dict[str, str] = {}
        if not by_stat:
            return moved
        for path, stat in found.items():
            candidates = by_stat.get((stat.st_size, stat.st_mtime))
            if path in existing or not candidates or stat.st_size > self.settings.max_file_bytes:
                continue
            try:
                content_hash = docstore.file_content_hash(Path(path).read_bytes())
            except OSError:
                continue
            old = next((c for c in candidates if existing[c].content_hash == content_hash), None)
            if old is None:
                continue
            record = existing[old]
            if not docstore.move_file_chunks(self.chunks, name, old, path, record.chunks):
                continue
            candidates.remove(old)
            record.path = path
            record.generation = uuid.uuid4().hex
            record.updated_at = docstore.utc_now_iso()
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(docstore.files_key(name), path, record.to_json())
            pipe.hdel(docstore.files_key(name), old)
            pipe.execute()
            moved[old] = path
            logger.info("moved %s to %s: %d chunks kept", old, path, record.chunks)
        return moved

    def _mark_pending(self, name: str, path: str, record: FileRecord | None) -> str:
        """Give the file a new generation and the pending state; returns the generation."""
        if record is None:
            record = FileRecord(path=path)
        record.state = docstore.FILE_PENDING
        record.error = None
        record.generation = uuid.uuid4().hex
        record.updated_at = docstore.utc_now_iso()
        # mtime/size are recorded when the file is indexed, so a crash re-detects it.
        self.redis.hset(docstore.files_key(name), path, record.to_json())
        return record.generation

    def _record_scan(
        self,
        name: str,
        uid: str,
        roots: list[str],
        paths: list[str] | None,
        before: dict[str, dict[str, str]],
        survey: Survey,
        skipped: int,
    ) -> None:
        """Write the scan's outcome on the collection: the unavailable paths (keeping when
        each became so), the file-limit message, and, for a full scan, that it is done."""
        if paths is None:
            kept: dict[str, dict[str, str]] = {}
        else:
            # A targeted scan speaks for the roots and the changed paths only.
            kept = {
                path: entry
                for path, entry in before.items()
                if path not in roots and not any(is_within(path, p) for p in paths)
            }
        now = docstore.utc_now_iso()
        unavailable = kept | {
            path: {"reason": reason, "since": before.get(path, {}).get("since") or now}
            for path, reason in survey.unavailable.items()
        }
        mapping = {
            docstore.UNAVAILABLE_FIELD: json.dumps(unavailable),
            "updated_at": now,
        }
        limit = self.settings.max_files_per_collection
        if skipped or paths is None:
            mapping["scan_error"] = (
                f"the file limit of {limit} was reached; {skipped} files were not indexed"
                if skipped
                else ""
            )
        if paths is None:
            mapping["scan_state"] = docstore.SCAN_DONE
        if self._collection(name, uid) is not None:
            self.redis.hset(docstore.collection_key(name), mapping=mapping)

    def fail_scan(self, name: str, uid: str, reason: str) -> None:
        if self._collection(name, uid) is not None:
            self.redis.hset(
                docstore.collection_key(name),
                mapping={"scan_state": docstore.SCAN_ERROR, "scan_error": reason},
            )
