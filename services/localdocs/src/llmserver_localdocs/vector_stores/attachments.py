"""The files of a vector store: attached as relative links in the store's folder (so the
chunks name the upload), listed, updated, detached (their chunks out of search at once)."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from anyio import to_thread

from llmserver_common.errors import APIError
from llmserver_localdocs.openai_shared import (
    Order,
    check_key_values,
    cursor_page,
    not_found,
    now,
    redis_call,
    sequence_number,
)
from llmserver_localdocs.vector_stores.records import (
    StoreRecords,
    attachments_key,
    store_key,
    stores_of_file_key,
)

logger = logging.getLogger(__name__)


class StoreFiles(StoreRecords):
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
