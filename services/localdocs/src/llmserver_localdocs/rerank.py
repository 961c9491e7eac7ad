"""The opt-in rerank stage of a search (LOCALDOCS_RERANK_MODEL): the hybrid search's top
candidates reordered by the inference service's POST /v1/rerank."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from llmserver_localdocs.upstreams import post_to_inference

logger = logging.getLogger(__name__)


def rerank_text(reference: dict[str, Any]) -> str:
    """What the model judges: the snippet under its document's title (as it was embedded)."""
    title = reference.get("title") or reference.get("file") or ""
    text = f"{title}\n{reference.get('text') or ''}".strip()
    return text or "(empty)"


async def rerank_references(
    http: httpx.AsyncClient,
    model: str,
    query: str,
    references: Sequence[dict[str, Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """The `limit` most relevant references, each with the rerank's score as its score."""
    if not references:
        return []
    payload = {
        "model": model,
        "query": query,
        "documents": [rerank_text(ref) for ref in references],
        "top_n": limit,
    }
    answer = await post_to_inference(
        http,
        "/v1/rerank",
        payload,
        doing="reranking the results",
        failed="The results could not be reranked",
    )
    return [
        {**references[result["index"]], "score": float(result["relevance_score"])}
        for result in answer["results"]
    ]
