"""File batches of a vector store: several files attached at once, their counts and
cancellation."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.openai_shared import (
    new_id,
    not_found,
    now,
    redis_call,
)
from llmserver_localdocs.vector_stores.attachments import StoreFiles
from llmserver_localdocs.vector_stores.records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    attachments_key,
    batch_key,
    batches_key,
    file_counts,
)
from llmserver_localdocs.vector_stores.schemas import (
    CreateBatchRequest,
)

logger = logging.getLogger(__name__)


class FileBatches(StoreFiles):
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
