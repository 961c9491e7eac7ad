"""LocalDocs logic: collection records in Redis, work queued by task name, search in Weaviate.

The API never imports the indexer: it sends Celery tasks by name (llmserver_common.docstore
holds the names) and reads the progress the workers write to Redis. The service is made of its
parts: upstreams.py (the clients), collection_management.py (records, collections, the
active set); this module searches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from llmserver_common import docstore
from llmserver_common.errors import invalid_request
from llmserver_localdocs.collection_management import Collections, validate_name
from llmserver_localdocs.rerank import rerank_references
from llmserver_localdocs.upstreams import post_to_inference

logger = logging.getLogger(__name__)


class LocalDocsService(Collections):
    # -- search ---------------------------------------------------------------------------

    async def _embed_query(self, query: str, model: str | None) -> list[float]:
        payload: dict[str, Any] = {"input": query, "input_type": "query"}
        if model:
            payload["model"] = model
        answer = await post_to_inference(
            self.http,
            "/v1/embeddings",
            payload,
            doing="embedding the query",
            failed="The query could not be embedded",
        )
        return list(answer["data"][0]["embedding"])

    async def search(
        self, query: str, collections: Sequence[str] | None, k: int | None
    ) -> list[dict[str, Any]]:
        if not query.strip():
            raise invalid_request("The query is empty.", param="query")
        if k is not None and k > self.settings.search_max_k:
            raise invalid_request(f"k is at most {self.settings.search_max_k}.", param="k")
        limit = k or self.settings.search_k
        rerank_model = self.settings.rerank_model
        fetched = max(limit, self.settings.rerank_candidates) if rerank_model else limit
        names = list(dict.fromkeys(collections)) if collections else await self.get_active()
        if not names:
            return []
        by_model: dict[str | None, list[str]] = {}
        for name in names:
            validate_name(name, param="collections")
            record = await self._record(name)
            model = record.get("embedding_model") or self.settings.embedding_model or None
            by_model.setdefault(model, []).append(name)
        references: list[dict[str, Any]] = []
        # Each collection is queried with the model its chunks were embedded with.
        for model, group in by_model.items():
            vector = await self._embed_query(query, model)
            references.extend(
                await self._in_weaviate(
                    lambda chunks, v=vector, g=group: docstore.hybrid_search(
                        chunks, query, v, g, k=fetched, alpha=self.settings.search_alpha
                    )
                )
            )
        references.sort(key=lambda ref: ref["score"] or 0.0, reverse=True)
        if rerank_model:
            return await rerank_references(
                self.http, rerank_model, query, references[:fetched], limit
            )
        return references[:limit]
