"""The opt-in rerank stage of a search (LOCALDOCS_RERANK_MODEL): the hybrid search's top
candidates reordered by the inference service's POST /v1/rerank."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from llmserver_common.errors import APIError
from llmserver_localdocs.upstreams import unavailable

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
    try:
        response = await http.post("/v1/rerank", json=payload)
    except httpx.TimeoutException as exc:
        raise APIError(504, "The inference service timed out reranking the results.") from exc
    except httpx.HTTPError as exc:
        raise unavailable("The inference service") from exc
    if response.status_code != 200:
        if response.status_code >= 500 or response.status_code == 429:
            raise unavailable("The inference service")
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        # A setting naming a model that cannot rerank: the server's fault, not the client's.
        raise APIError(502, f"The results could not be reranked: {message}")
    return [
        {**references[result["index"]], "score": float(result["relevance_score"])}
        for result in response.json()["results"]
    ]
