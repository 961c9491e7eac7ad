"""A vector store's records in Redis and how they read: keys, the store and its attachments,
each file's status from its collection's file records, the objects the API answers.

Redis (`llmserver:openai:…`): a hash per store, a sorted set of stores in creation order, a
hash of attachments per store (file id -> JSON), a set of stores per file, a hash per batch
and a set of batches per store (deleted with the store).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from anyio import to_thread

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_common.errors import APIError
from llmserver_localdocs.openai_files.service import FilesService
from llmserver_localdocs.openai_shared import (
    REDIS_PREFIX,
    not_found,
    now,
    redis_call,
)
from llmserver_localdocs.service import LocalDocsService

logger = logging.getLogger(__name__)

STORES_KEY = f"{REDIS_PREFIX}:vector_stores"  # sorted set: store id -> sequence number
DAY_S = 86_400
# A search records the store's activity (for expires_after) at most this often.
ACTIVE_RESOLUTION_S = 60
IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "in_progress", "completed", "failed", "cancelled"


def store_key(store_id: str) -> str:
    return f"{REDIS_PREFIX}:vector_store:{store_id}"


def attachments_key(store_id: str) -> str:
    return f"{REDIS_PREFIX}:vector_store_files:{store_id}"


def stores_of_file_key(file_id: str) -> str:
    return f"{REDIS_PREFIX}:file_vector_stores:{file_id}"


def batch_key(batch_id: str) -> str:
    return f"{REDIS_PREFIX}:file_batch:{batch_id}"


def batches_key(store_id: str) -> str:
    return f"{REDIS_PREFIX}:vector_store_batches:{store_id}"


def last_error_of(reason: str | None) -> dict[str, str]:
    """A failed file's reason in OpenAI's codes: no text is `unsupported_file`, retries given
    up (an upstream down) are `server_error`, anything else about the file `invalid_file`."""
    message = reason or "the file could not be indexed"
    if message.startswith("gave up"):
        code = "server_error"
    elif "no text could be extracted" in message:
        code = "unsupported_file"
    else:
        code = "invalid_file"
    return {"code": code, "message": message}


def expires_at_of(record: dict[str, str]) -> int | None:
    """When a store with `expires_after` expires: that many days after its last activity."""
    expires_after = json.loads(record.get("expires_after") or "null")
    if not expires_after:
        return None
    last_active = int(record.get("last_active_at") or record["created_at"])
    return last_active + int(expires_after["days"]) * DAY_S


def file_counts(statuses: list[str]) -> dict[str, int]:
    counts = {IN_PROGRESS: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0}
    for status in statuses:
        counts[status] += 1
    return {**counts, "total": len(statuses)}


class StoreRecords:
    """What every part of the vector stores' service reads: the store, its attachments, the
    statuses of its files."""

    def __init__(self, localdocs: LocalDocsService, files: FilesService) -> None:
        self.localdocs = localdocs
        self.files = files
        self.redis = localdocs.redis

    @property
    def stores_dir(self) -> Path:
        return self.files.files_dir.parent / "vector_stores"

    def _link(self, store_id: str, file_id: str, filename: str) -> Path:
        return self.stores_dir / store_id / f"{file_id}--{filename}"

    # -- records --------------------------------------------------------------------------

    async def _store(self, store_id: str) -> dict[str, str]:
        raw = await redis_call(self.redis.hgetall(store_key(store_id)))
        if not raw or not raw.get("id"):
            raise not_found("vector store", store_id, "vector_store_id")
        return raw

    async def _attachments(self, store_id: str) -> dict[str, dict[str, Any]]:
        raw = await redis_call(self.redis.hgetall(attachments_key(store_id)))
        return {file_id: json.loads(value) for file_id, value in raw.items()}

    async def _statuses(
        self, store_id: str, attachments: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Each attached file's status, last error and size, from the collection's records."""
        try:
            records = await self.localdocs.file_records(store_id)
        except APIError as exc:
            if exc.status_code != 404:
                raise
            records = {}  # the collection was deleted through /v1/localdocs
        found: dict[str, dict[str, Any]] = {}
        for file_id, attachment in attachments.items():
            upload = self.files.files_dir / file_id / attachment["filename"]
            record: FileRecord | None = records.get(str(upload))
            last_error = None
            if attachment.get("cancelled"):
                status = CANCELLED
            elif record is not None and record.state == docstore.FILE_INDEXED:
                status = COMPLETED
            elif record is not None and record.state == docstore.FILE_FAILED:
                status, last_error = FAILED, last_error_of(record.error)
            elif not await to_thread.run_sync(upload.is_file):
                status = FAILED
                last_error = {
                    "code": "invalid_file",
                    "message": "the uploaded file is missing from the server's data folder",
                }
            else:
                status = IN_PROGRESS
            found[file_id] = {
                "status": status,
                "last_error": last_error,
                "usage_bytes": attachment.get("bytes", 0) if status == COMPLETED else 0,
            }
        return found

    def _file_view(
        self, store_id: str, file_id: str, attachment: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": file_id,
            "created_at": attachment["created_at"],
            "vector_store_id": store_id,
            "attributes": attachment.get("attributes") or {},
            **status,
        }

    async def _view(self, record: dict[str, str]) -> dict[str, Any]:
        store_id = record["id"]
        attachments = await self._attachments(store_id)
        statuses = await self._statuses(store_id, attachments)
        counts = file_counts([status["status"] for status in statuses.values()])
        try:
            collection = await self.localdocs.get_collection(store_id)
        except APIError as exc:
            if exc.status_code != 404:
                raise
            collection = {"state": docstore.STATE_READY, "unavailable_paths": []}
        expires_after = json.loads(record.get("expires_after") or "null")
        last_active = int(record.get("last_active_at") or record["created_at"])
        expires_at = expires_at_of(record)
        if expires_at is not None and now() >= expires_at:
            status = "expired"
        elif counts[IN_PROGRESS] or collection["state"] == docstore.STATE_INDEXING:
            status = IN_PROGRESS
        else:
            status = COMPLETED
        return {
            "id": store_id,
            "created_at": int(record["created_at"]),
            "name": record.get("name", ""),
            "usage_bytes": sum(status["usage_bytes"] for status in statuses.values()),
            "file_counts": counts,
            "status": status,
            "expires_after": expires_after,
            "expires_at": expires_at,
            "last_active_at": last_active,
            "metadata": json.loads(record.get("metadata") or "{}"),
            "localdocs_collection": store_id,
            "unavailable_paths": collection["unavailable_paths"],
        }
