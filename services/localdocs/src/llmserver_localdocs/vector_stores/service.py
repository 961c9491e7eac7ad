"""Vector stores: each one is a LocalDocs collection of the same name (its id, `vs_…`).

The collection's one path is the store's folder, `<openai_dir>/vector_stores/<id>/`, and
attaching a file puts a relative link to the upload there (`<file id>--<name>`): the indexer
resolves links, so the chunks carry the upload's own path (`files/<file id>/<name>`), and a
search hit names its file id. Indexing is LocalDocs' own (Celery, Tika, chunks, embeddings,
Weaviate); a vector store file's status is read from the collection's file records.

The service is made of its parts: records.py (Redis records, statuses, views), attachments.py
(a store's files), batches.py (file batches), search.py; this module creates, lists, modifies
and deletes stores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from typing import Any

from anyio import to_thread

from llmserver_common.errors import APIError
from llmserver_localdocs.openai_shared import (
    Order,
    check_key_values,
    cursor_page,
    new_id,
    now,
    redis_call,
    sequence_number,
)
from llmserver_localdocs.vector_stores.batches import FileBatches
from llmserver_localdocs.vector_stores.records import (
    STORES_KEY,
    attachments_key,
    batch_key,
    batches_key,
    store_key,
    stores_of_file_key,
)
from llmserver_localdocs.vector_stores.schemas import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
)
from llmserver_localdocs.vector_stores.search import StoreSearch

logger = logging.getLogger(__name__)


class VectorStoresService(FileBatches, StoreSearch):
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
