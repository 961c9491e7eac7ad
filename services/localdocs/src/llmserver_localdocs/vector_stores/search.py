"""Searching a vector store: LocalDocs' hybrid search over the store's collection, filtered by
the files' attributes, as OpenAI's search results page."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from llmserver_common.errors import invalid_request
from llmserver_localdocs.openai_shared import (
    not_found,
    now,
    redis_call,
)
from llmserver_localdocs.vector_stores.filters import matches
from llmserver_localdocs.vector_stores.records import (
    ACTIVE_RESOLUTION_S,
    StoreRecords,
    attachments_key,
    expires_at_of,
    store_key,
)
from llmserver_localdocs.vector_stores.schemas import (
    VectorStoreSearchRequest,
)

logger = logging.getLogger(__name__)


class StoreSearch(StoreRecords):
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
        expires_at = expires_at_of(record)
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
