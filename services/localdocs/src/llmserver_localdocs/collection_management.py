"""LocalDocs collections: their records in Redis (paths under the allowed roots, progress the
workers write), creating, changing, rescanning and deleting them, what the folder watcher and
the vector stores ask of them, and the server-wide active set."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.upstreams import Upstreams

logger = logging.getLogger(__name__)


def collection_not_found(name: str) -> APIError:
    return APIError(
        404,
        f"The collection '{name}' does not exist.",
        param="name",
        code="collection_not_found",
    )


def validate_name(name: str, param: str = "name") -> str:
    if not docstore.is_valid_collection_name(name):
        raise invalid_request(
            "A collection name is 1 to 64 letters, digits, '-' or '_'.",
            param=param,
            code="invalid_collection_name",
        )
    return name


def _listed_path(raw: str, listed: Sequence[str]) -> str | None:
    """The collection path `raw` names: as listed, or by its real path if it still exists."""
    candidates = {raw, os.path.normpath(raw)} if raw else set()
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        candidates.add(str(Path(raw).resolve(strict=True)))
    return next((path for path in listed if path in candidates), None)


class Collections(Upstreams):
    # -- records --------------------------------------------------------------------------

    def _resolve_paths(self, paths: Sequence[str]) -> list[str]:
        if len(paths) > self.settings.max_paths_per_request:
            raise invalid_request(
                f"At most {self.settings.max_paths_per_request} paths per request.",
                param="paths",
            )
        resolved: list[str] = []
        for raw in paths:
            try:
                real = docstore.resolve_allowed_path(raw, self.settings.allowed_roots)
            except docstore.PathNotAllowed as exc:
                raise invalid_request(
                    f"Path not allowed: {exc}.", param="paths", code="path_not_allowed"
                ) from None
            if not (real.is_dir() or real.is_file()):
                raise invalid_request(
                    f"Path not allowed: '{raw}' is neither a folder nor a file.",
                    param="paths",
                    code="path_not_allowed",
                )
            if str(real) not in resolved:
                resolved.append(str(real))
        return resolved

    async def _record(self, name: str) -> dict[str, str]:
        record = await self._redis_call(self.redis.hgetall(docstore.collection_key(name)))
        if not record or not record.get("uid"):
            raise collection_not_found(name)
        return docstore.decode_hash(record)

    async def _files(self, name: str) -> list[FileRecord]:
        raw = await self._redis_call(self.redis.hvals(docstore.files_key(name)))
        return [FileRecord.from_json(item) for item in raw]

    def _view(self, record: dict[str, str], files: list[FileRecord]) -> dict[str, Any]:
        progress = docstore.summarize_progress(record.get("scan_state", docstore.SCAN_DONE), files)
        return {
            "name": record["name"],
            "paths": json.loads(record.get("paths", "[]")),
            "embedding_model": record.get("embedding_model")
            or self.settings.embedding_model
            or None,
            **progress,
            "unavailable_paths": [
                {"path": path, "reason": entry.get("reason"), "since": entry.get("since")}
                for path, entry in sorted(docstore.decode_unavailable(record).items())
            ],
            "error": record.get("scan_error") or None,
            "created_at": record.get("created_at"),
            "updated_at": record.get("updated_at"),
        }

    # -- collections ----------------------------------------------------------------------

    async def create_collection(self, name: str, paths: Sequence[str]) -> dict[str, Any]:
        validate_name(name)
        resolved = self._resolve_paths(paths)
        added = await self._redis_call(self.redis.sadd(docstore.COLLECTIONS_SET_KEY, name))
        if not added:
            raise APIError(
                409,
                f"A collection named '{name}' already exists.",
                param="name",
                code="collection_exists",
            )
        uid = uuid.uuid4().hex
        now = docstore.utc_now_iso()
        record = {
            "name": name,
            "uid": uid,
            "paths": json.dumps(resolved),
            "created_at": now,
            "updated_at": now,
            "scan_state": docstore.SCAN_SCANNING,
            "scan_error": "",
        }
        if self.settings.embedding_model:
            record["embedding_model"] = self.settings.embedding_model
        try:
            # Chunks an earlier collection of this name may have left (a delete that raced).
            await self._in_weaviate(
                docstore.delete_collection_chunks, name, timeout_s=self.settings.upstream_timeout_s
            )
            await self._redis_call(self.redis.hset(docstore.collection_key(name), mapping=record))
        except APIError:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.srem(docstore.COLLECTIONS_SET_KEY, name)
            raise
        await self._queue_scan(name, uid, {})
        logger.info("collection %s created with %d paths", name, len(resolved))
        return self._view(record, [])

    async def list_collections(self) -> list[dict[str, Any]]:
        names = await self._redis_call(self.redis.smembers(docstore.COLLECTIONS_SET_KEY))
        views = []
        for name in sorted(names):
            try:
                views.append(await self.get_collection(name))
            except APIError as exc:
                if exc.status_code != 404:
                    raise
        return views

    async def get_collection(self, name: str) -> dict[str, Any]:
        record = await self._record(name)
        return self._view(record, await self._files(name))

    async def list_files(self, name: str) -> list[dict[str, Any]]:
        await self._record(name)
        files = sorted(await self._files(name), key=lambda record: record.path)
        return [record.public() for record in files]

    async def add_paths(self, name: str, paths: Sequence[str]) -> dict[str, Any]:
        record = await self._record(name)
        resolved = self._resolve_paths(paths)
        current: list[str] = json.loads(record.get("paths", "[]"))
        merged = current + [path for path in resolved if path not in current]
        await self._redis_call(
            self.redis.hset(
                docstore.collection_key(name),
                mapping={
                    "paths": json.dumps(merged),
                    "scan_state": docstore.SCAN_SCANNING,
                    "updated_at": docstore.utc_now_iso(),
                },
            )
        )
        await self._queue_scan(name, record["uid"], {})
        return await self.get_collection(name)

    async def remove_paths(self, name: str, paths: Sequence[str]) -> dict[str, Any]:
        """Take paths out of the collection; the scan this queues removes their files' chunks
        (unless another of its paths still holds them)."""
        record = await self._record(name)
        current: list[str] = json.loads(record.get("paths", "[]"))
        doomed: list[str] = []
        for raw in paths:
            match = _listed_path(raw, current)
            if match is None:
                # 404: the path is no resource of this collection (the request itself is fine).
                raise APIError(
                    404,
                    f"'{raw}' is not a path of the collection '{name}'.",
                    type="invalid_request_error",
                    param="path",
                    code="path_not_in_collection",
                )
            doomed.append(match)
        remaining = [path for path in current if path not in doomed]
        if not remaining:
            # 409: valid, but not in the collection's present state (it would have no path).
            raise APIError(
                409,
                "A collection keeps at least one path; delete the collection instead.",
                type="invalid_request_error",
                param="path",
                code="last_path",
            )
        unavailable = {
            path: entry
            for path, entry in docstore.decode_unavailable(record).items()
            if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in doomed)
        }
        await self._redis_call(
            self.redis.hset(
                docstore.collection_key(name),
                mapping={
                    "paths": json.dumps(remaining),
                    docstore.UNAVAILABLE_FIELD: json.dumps(unavailable),
                    "scan_state": docstore.SCAN_SCANNING,
                    "updated_at": docstore.utc_now_iso(),
                },
            )
        )
        await self._queue_scan(name, record["uid"], {})
        logger.info("collection %s: %d paths removed", name, len(doomed))
        return await self.get_collection(name)

    async def reindex(self, name: str) -> dict[str, Any]:
        record = await self._record(name)
        await self._redis_call(
            self.redis.hset(
                docstore.collection_key(name),
                mapping={
                    "scan_state": docstore.SCAN_SCANNING,
                    "updated_at": docstore.utc_now_iso(),
                },
            )
        )
        await self._queue_scan(name, record["uid"], {"retry_failed": True})
        return await self.get_collection(name)

    async def delete_collection(self, name: str) -> None:
        await self._record(name)
        # Redis first: workers check the record and stop, or take back what they wrote.
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(docstore.COLLECTIONS_SET_KEY, name)
        pipe.delete(docstore.collection_key(name), docstore.files_key(name))
        await self._redis_call(pipe.execute())
        await self._in_weaviate(
            docstore.delete_collection_chunks, name, timeout_s=self.settings.upstream_timeout_s
        )
        active = await self.get_active()
        if name in active:
            await self._store_active([n for n in active if n != name])
        logger.info("collection %s deleted", name)

    async def rescan_all(self) -> int:
        """Queue a scan of every collection not already scanning (the periodic rescan)."""
        names = await self._redis_call(self.redis.smembers(docstore.COLLECTIONS_SET_KEY))
        queued = 0
        for name in sorted(names):
            record = docstore.decode_hash(
                await self._redis_call(self.redis.hgetall(docstore.collection_key(name)))
            )
            if not record.get("uid") or record.get("scan_state") == docstore.SCAN_SCANNING:
                continue
            await self._send(docstore.TASK_SCAN_COLLECTION, [name, record["uid"], {}])
            queued += 1
        return queued

    # -- folder watching ------------------------------------------------------------------

    async def watched_collections(self) -> list[dict[str, Any]]:
        """Every collection's name, uid, paths and unavailable paths, for the folder watcher."""
        names = await self._redis_call(self.redis.smembers(docstore.COLLECTIONS_SET_KEY))
        collections = []
        for name in sorted(names):
            record = docstore.decode_hash(
                await self._redis_call(self.redis.hgetall(docstore.collection_key(name)))
            )
            if record.get("uid"):
                collections.append(
                    {
                        "name": name,
                        "uid": record["uid"],
                        "paths": json.loads(record.get("paths", "[]")),
                        "unavailable": docstore.decode_unavailable(record),
                    }
                )
        return collections

    async def queue_watched_scan(self, name: str, uid: str, options: dict[str, Any]) -> None:
        """A scan of what the watcher saw change ({"paths": [...]}), or of everything ({})."""
        await self._send(docstore.TASK_SCAN_COLLECTION, [name, uid, options])

    # -- for the OpenAI vector stores (vector_stores/) ------------------------------------

    async def queue_scan(self, name: str, options: dict[str, Any]) -> None:
        """Queue a scan of the collection: {"paths": [...]} for those paths, {} for all."""
        record = await self._record(name)
        await self._queue_scan(name, record["uid"], options)

    async def forget_file(self, name: str, path: str) -> None:
        """Take one file out of the collection's search at once (its chunks and its record),
        as the next scan does when the file is gone."""
        await self._in_weaviate(
            docstore.delete_file_chunks, name, path, timeout_s=self.settings.upstream_timeout_s
        )
        await self._redis_call(self.redis.hdel(docstore.files_key(name), path))

    async def file_records(self, name: str) -> dict[str, FileRecord]:
        """The collection's file records by path."""
        return {record.path: record for record in await self._files(name)}

    # -- active set -----------------------------------------------------------------------

    async def get_active(self) -> list[str]:
        raw = await self._redis_call(self.redis.get(docstore.ACTIVE_KEY))
        names: list[str] = json.loads(raw) if raw else []
        existing = await self._redis_call(self.redis.smembers(docstore.COLLECTIONS_SET_KEY))
        return [name for name in names if name in existing]

    async def _store_active(self, names: list[str]) -> None:
        await self._redis_call(self.redis.set(docstore.ACTIVE_KEY, json.dumps(names)))

    async def set_active(self, names: Sequence[str]) -> list[str]:
        unique: list[str] = []
        for name in names:
            validate_name(name, param="collections")
            if name not in unique:
                unique.append(name)
        for name in unique:
            await self._record(name)
        await self._store_active(unique)
        return unique
