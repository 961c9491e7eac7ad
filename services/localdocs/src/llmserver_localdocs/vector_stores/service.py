"""Vector stores: each one is a LocalDocs collection of the same name (its id, `vs_…`).

The collection's one path is the store's folder, `<openai_dir>/vector_stores/<id>/`, and
attaching a file puts a relative link to the upload there (`<file id>--<name>`): the indexer
resolves links, so the chunks carry the upload's own path (`files/<file id>/<name>`), and a
search hit names its file id. Indexing is LocalDocs' own (Celery, Tika, chunks, embeddings,
Weaviate); a vector store file's status is read from the collection's file records.

Redis (`llmserver:openai:…`): a hash per store, a sorted set of stores in creation order, a
hash of attachments per store (file id -> JSON), a set of stores per file, a hash per batch
and a set of batches per store (deleted with the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from anyio import to_thread

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.openai_files.service import FilesService
from llmserver_localdocs.openai_shared import (
    REDIS_PREFIX,
    Order,
    check_key_values,
    cursor_page,
    new_id,
    not_found,
    now,
    redis_call,
    sequence_number,
)
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.vector_stores.filters import matches
from llmserver_localdocs.vector_stores.schemas import (
    CreateBatchRequest,
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    VectorStoreSearchRequest,
)

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


def _expires_at(record: dict[str, str]) -> int | None:
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


class VectorStoresService:
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
        expires_at = _expires_at(record)
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

    # -- vector stores --------------------------------------------------------------------

    async def create(self, body: CreateVectorStoreRequest) -> dict[str, Any]:
        metadata = check_key_values(body.metadata, "metadata", scalars=(str,))
        uploads = [await self.files.record(file_id, "file_ids") for file_id in body.file_ids or []]
        store_id = new_id("vs_")
        folder = self.stores_dir / store_id
        await to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=False))
        created = now()
        record = {
            "id": store_id,
            "name": body.name or "",
            "created_at": str(created),
            "last_active_at": str(created),
            "metadata": json.dumps(metadata),
            "expires_after": json.dumps(
                body.expires_after.model_dump() if body.expires_after else None
            ),
        }
        try:
            # Links first: the collection's first scan finds them.
            for upload in uploads:
                await self._put_link(store_id, upload)
            await self.localdocs.create_collection(store_id, [str(folder)])
        except BaseException:
            await to_thread.run_sync(shutil.rmtree, folder, True)
            raise
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(store_key(store_id), mapping=record)
        pipe.zadd(STORES_KEY, {store_id: sequence_number()})
        for upload in uploads:
            self._queue_attachment(pipe, store_id, upload, {}, None)
        try:
            await redis_call(pipe.execute())
        except APIError:
            # No store without its record: the collection made for it goes again.
            with contextlib.suppress(APIError):
                await self.localdocs.delete_collection(store_id)
            await to_thread.run_sync(shutil.rmtree, folder, True)
            raise
        logger.info("vector store %s created with %d files", store_id, len(uploads))
        return await self._view(record)

    async def get(self, store_id: str) -> dict[str, Any]:
        return await self._view(await self._store(store_id))

    async def list(
        self, *, limit: int, order: Order, after: str | None, before: str | None
    ) -> dict[str, Any]:
        ids: list[str] = await redis_call(self.redis.zrange(STORES_KEY, 0, -1))
        # Only the page's stores are looked at in full (their files' states).
        stubs = [{"id": store_id} for store_id in ids]
        page = cursor_page(stubs, limit=limit, order=order, after=after, before=before)
        views = []
        for stub in page["data"]:
            try:
                views.append(await self.get(stub["id"]))
            except APIError as exc:
                if exc.status_code != 404:  # deleted meanwhile; anything else is the caller's
                    raise
        return {**page, "data": views}

    async def modify(self, store_id: str, body: ModifyVectorStoreRequest) -> dict[str, Any]:
        await self._store(store_id)
        update: dict[str, str] = {"last_active_at": str(now())}
        given = body.model_fields_set
        if "name" in given:
            update["name"] = body.name or ""
        if "metadata" in given:
            update["metadata"] = json.dumps(
                check_key_values(body.metadata, "metadata", scalars=(str,))
            )
        if "expires_after" in given:
            update["expires_after"] = json.dumps(
                body.expires_after.model_dump() if body.expires_after else None
            )
        await redis_call(self.redis.hset(store_key(store_id), mapping=update))
        return await self.get(store_id)

    async def delete(self, store_id: str) -> dict[str, Any]:
        await self._store(store_id)
        try:
            await self.localdocs.delete_collection(store_id)
        except APIError as exc:
            if exc.status_code != 404:
                raise
        attachments = await self._attachments(store_id)
        batches = await redis_call(self.redis.smembers(batches_key(store_id)))
        pipe = self.redis.pipeline(transaction=True)
        for file_id in attachments:
            pipe.srem(stores_of_file_key(file_id), store_id)
        for batch_id in batches:
            pipe.delete(batch_key(batch_id))
        pipe.delete(store_key(store_id), attachments_key(store_id), batches_key(store_id))
        pipe.zrem(STORES_KEY, store_id)
        await redis_call(pipe.execute())
        await to_thread.run_sync(shutil.rmtree, self.stores_dir / store_id, True)
        logger.info("vector store %s deleted", store_id)
        return {"id": store_id, "deleted": True}

    # -- files of a vector store ----------------------------------------------------------

    async def _put_link(self, store_id: str, upload: dict[str, str]) -> None:
        link = self._link(store_id, upload["id"], upload["filename"])
        target = Path("..") / ".." / "files" / upload["id"] / upload["filename"]

        def make() -> None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(target)

        await to_thread.run_sync(make)

    def _queue_attachment(
        self,
        pipe: Any,
        store_id: str,
        upload: dict[str, str],
        attributes: dict[str, Any],
        batch_id: str | None,
    ) -> None:
        attachment = {
            "filename": upload["filename"],
            "bytes": int(upload.get("bytes", 0)),
            "created_at": now(),
            "seq": sequence_number(),
            "attributes": attributes,
            "batch_id": batch_id,
        }
        pipe.hset(attachments_key(store_id), upload["id"], json.dumps(attachment))
        pipe.sadd(stores_of_file_key(upload["id"]), store_id)

    async def _attach_all(
        self, store_id: str, wanted: list[tuple[str, dict[str, Any]]], batch_id: str | None
    ) -> None:
        """Attach files (id, attributes): every id checked first, then linked and recorded,
        then one scan of the new links queued."""
        uploads = []
        for file_id, attributes in wanted:
            checked = check_key_values(attributes, "attributes", scalars=(str, bool, int, float))
            uploads.append((await self.files.record(file_id), checked))
        links = []
        for upload, _ in uploads:
            await self._put_link(store_id, upload)
            links.append(str(self._link(store_id, upload["id"], upload["filename"])))
        pipe = self.redis.pipeline(transaction=True)
        for upload, attributes in uploads:
            self._queue_attachment(pipe, store_id, upload, attributes, batch_id)
        pipe.hset(store_key(store_id), "last_active_at", str(now()))
        await redis_call(pipe.execute())
        try:
            await self.localdocs.queue_scan(store_id, {"paths": links})
        except APIError as exc:
            # Attached all the same: the collection says the scan could not be queued, and
            # the next rescan (periodic, or the indexer's at start) finds the links.
            logger.warning("vector store %s: scan not queued (%s)", store_id, exc.message)

    async def attach(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        await self._store(store_id)
        await self._attach_all(store_id, [(file_id, attributes or {})], None)
        return await self.get_file(store_id, file_id)

    async def _attachment(self, store_id: str, file_id: str) -> dict[str, Any]:
        await self._store(store_id)
        raw = await redis_call(self.redis.hget(attachments_key(store_id), file_id))
        if raw is None:
            raise not_found("file", file_id, "file_id")
        return json.loads(raw)

    async def get_file(self, store_id: str, file_id: str) -> dict[str, Any]:
        attachment = await self._attachment(store_id, file_id)
        status = (await self._statuses(store_id, {file_id: attachment}))[file_id]
        return self._file_view(store_id, file_id, attachment, status)

    async def update_file(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        attachment = await self._attachment(store_id, file_id)
        attachment["attributes"] = check_key_values(
            attributes, "attributes", scalars=(str, bool, int, float)
        )
        await redis_call(
            self.redis.hset(attachments_key(store_id), file_id, json.dumps(attachment))
        )
        return await self.get_file(store_id, file_id)

    async def list_files(
        self,
        store_id: str,
        *,
        status: str | None,
        limit: int,
        order: Order,
        after: str | None,
        before: str | None,
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        await self._store(store_id)
        attachments = await self._attachments(store_id)
        if batch_id is not None:
            attachments = {
                file_id: attachment
                for file_id, attachment in attachments.items()
                if attachment.get("batch_id") == batch_id
            }
        statuses = await self._statuses(store_id, attachments)
        views = [
            self._file_view(store_id, file_id, attachments[file_id], statuses[file_id])
            for file_id in sorted(attachments, key=lambda f: attachments[f]["seq"])
            if status is None or statuses[file_id]["status"] == status
        ]
        return cursor_page(views, limit=limit, order=order, after=after, before=before)

    async def _let_go(self, store_id: str, file_id: str, attachment: dict[str, Any]) -> None:
        """The file's link is removed and its chunks leave search now."""
        link = self._link(store_id, file_id, attachment["filename"])
        await to_thread.run_sync(lambda: link.unlink(missing_ok=True))
        upload = self.files.files_dir / file_id / attachment["filename"]
        try:
            await self.localdocs.forget_file(store_id, str(upload))
        except APIError as exc:
            if exc.status_code != 404:
                raise

    async def detach(self, store_id: str, file_id: str) -> dict[str, Any]:
        attachment = await self._attachment(store_id, file_id)
        await self._let_go(store_id, file_id, attachment)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(attachments_key(store_id), file_id)
        pipe.srem(stores_of_file_key(file_id), store_id)
        await redis_call(pipe.execute())
        # A task indexing the file right now may still write its chunks: a full scan (the
        # link is gone) takes them out again.
        with contextlib.suppress(APIError):
            await self.localdocs.queue_scan(store_id, {})
        return {"id": file_id, "deleted": True}

    async def detach_everywhere(self, file_id: str) -> None:
        """Before a file is deleted: out of every vector store it is in."""
        stores = await redis_call(self.redis.smembers(stores_of_file_key(file_id)))
        for store_id in sorted(stores):
            try:
                await self.detach(store_id, file_id)
            except APIError as exc:
                if exc.status_code != 404:
                    raise
        await redis_call(self.redis.delete(stores_of_file_key(file_id)))

    # -- file batches ---------------------------------------------------------------------

    async def create_batch(self, store_id: str, body: CreateBatchRequest) -> dict[str, Any]:
        await self._store(store_id)
        if body.file_ids and body.files:
            raise invalid_request("Give either 'file_ids' or 'files', not both.", param="files")
        if body.files:
            wanted = [(item.file_id, item.attributes or {}) for item in body.files]
        elif body.file_ids:
            wanted = [(file_id, body.attributes or {}) for file_id in body.file_ids]
        else:
            raise invalid_request("Missing required parameter: 'file_ids'.", param="file_ids")
        wanted = list({file_id: (file_id, attrs) for file_id, attrs in wanted}.values())
        batch_id = new_id("vsfb_")
        await self._attach_all(store_id, wanted, batch_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            batch_key(batch_id),
            mapping={
                "id": batch_id,
                "vector_store_id": store_id,
                "created_at": str(now()),
                "cancelled": "",
            },
        )
        pipe.sadd(batches_key(store_id), batch_id)
        await redis_call(pipe.execute())
        return await self.get_batch(store_id, batch_id)

    async def _batch(self, store_id: str, batch_id: str) -> dict[str, str]:
        await self._store(store_id)
        raw = await redis_call(self.redis.hgetall(batch_key(batch_id)))
        if not raw or raw.get("vector_store_id") != store_id:
            raise not_found("file batch", batch_id, "batch_id")
        return raw

    async def get_batch(self, store_id: str, batch_id: str) -> dict[str, Any]:
        record = await self._batch(store_id, batch_id)
        attachments = {
            file_id: attachment
            for file_id, attachment in (await self._attachments(store_id)).items()
            if attachment.get("batch_id") == batch_id
        }
        statuses = await self._statuses(store_id, attachments)
        counts = file_counts([status["status"] for status in statuses.values()])
        if counts[IN_PROGRESS]:
            status = IN_PROGRESS
        elif record.get("cancelled"):
            status = CANCELLED
        elif counts["total"] and counts[FAILED] == counts["total"]:
            status = FAILED
        else:
            status = COMPLETED
        return {
            "id": batch_id,
            "created_at": int(record["created_at"]),
            "vector_store_id": store_id,
            "status": status,
            "file_counts": counts,
        }

    async def cancel_batch(self, store_id: str, batch_id: str) -> dict[str, Any]:
        """Files of the batch not yet indexed are taken out and marked cancelled."""
        await self._batch(store_id, batch_id)
        attachments = await self._attachments(store_id)
        mine = {f: a for f, a in attachments.items() if a.get("batch_id") == batch_id}
        statuses = await self._statuses(store_id, mine)
        for file_id, attachment in mine.items():
            if statuses[file_id]["status"] != IN_PROGRESS:
                continue
            await self._let_go(store_id, file_id, attachment)
            attachment["cancelled"] = True
            await redis_call(
                self.redis.hset(attachments_key(store_id), file_id, json.dumps(attachment))
            )
        await redis_call(self.redis.hset(batch_key(batch_id), "cancelled", "1"))
        with contextlib.suppress(APIError):
            await self.localdocs.queue_scan(store_id, {})
        return await self.get_batch(store_id, batch_id)

    # -- search ---------------------------------------------------------------------------

    async def search(self, store_id: str, body: VectorStoreSearchRequest) -> dict[str, Any]:
        queries = [body.query] if isinstance(body.query, str) else list(body.query)
        if not queries or any(not query.strip() for query in queries):
            raise invalid_request("The query is empty.", param="query")
        # With a filter, more is asked of LocalDocs and the files filtered out dropped here.
        limit = self.localdocs.settings.search_max_k
        k = min(body.max_num_results if body.filters is None else limit, limit)
        # The store and its attachments are read while the queries are searched: this is on
        # every search's path, and the search (embedding, Weaviate) takes far longer.
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(store_key(store_id))
        pipe.hgetall(attachments_key(store_id))
        found = await asyncio.gather(
            redis_call(pipe.execute()),
            *(self.localdocs.search(query, [store_id], k) for query in queries),
            return_exceptions=True,
        )
        if isinstance(found[0], BaseException):
            raise found[0]
        record, raw_attachments = found[0]
        if not record or not record.get("id"):
            raise not_found("vector store", store_id, "vector_store_id")
        expires_at = _expires_at(record)
        if expires_at is not None and now() >= expires_at:
            raise invalid_request(
                f"The vector store '{store_id}' expired (expires_after); make a new one.",
                param="vector_store_id",
                code="vector_store_expired",
            )
        for outcome in found[1:]:
            if isinstance(outcome, BaseException):
                raise outcome
        attachments = {file_id: json.loads(raw) for file_id, raw in raw_attachments.items()}
        condition = body.filters.model_dump() if body.filters is not None else None
        allowed = {
            file_id
            for file_id, attachment in attachments.items()
            if not attachment.get("cancelled")
            and (condition is None or matches(condition, attachment.get("attributes") or {}))
        }
        threshold = body.ranking_options.score_threshold if body.ranking_options else None
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for references in found[1:]:
            for reference in references:
                file_id = self.files.id_of_path(reference.get("path") or "")
                score = reference.get("score") or 0.0
                if file_id not in allowed or (threshold is not None and score < threshold):
                    continue
                key = (file_id, reference["text"])
                if key not in best or best[key]["score"] < score:
                    best[key] = {
                        "file_id": file_id,
                        "filename": attachments[file_id]["filename"],
                        "score": score,
                        "attributes": attachments[file_id].get("attributes") or {},
                        "content": [{"type": "text", "text": reference["text"]}],
                        "page": reference.get("page"),
                    }
        results = sorted(best.values(), key=lambda result: result["score"], reverse=True)
        if now() - int(record.get("last_active_at") or 0) >= ACTIVE_RESOLUTION_S:
            await redis_call(self.redis.hset(store_key(store_id), "last_active_at", str(now())))
        return {"search_query": body.query, "data": results[: body.max_num_results]}
