"""Embeddings from the inference service's OpenAI-compatible /v1/embeddings, in batches."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from llmserver_indexer.extract import FileProblem

logger = logging.getLogger(__name__)


class InferenceUnavailable(Exception):
    """The inference service could not be reached or is not ready; worth retrying."""


class EmbeddingClient:
    def __init__(self, base_url: str, model: str | None, timeout_s: float) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.model = model

    def close(self) -> None:
        self._http.close()

    def embed(
        self, texts: Sequence[str], *, batch_size: int, input_type: str = "document"
    ) -> tuple[list[list[float]], str | None]:
        """Vectors for `texts` in order, and the model name the inference service reports."""
        vectors: list[list[float]] = []
        model_name: str | None = self.model
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            payload: dict[str, object] = {"input": batch, "input_type": input_type}
            if self.model:
                payload["model"] = self.model
            try:
                response = self._http.post("/v1/embeddings", json=payload)
            except httpx.HTTPError as exc:
                raise InferenceUnavailable(
                    f"inference could not be reached: {exc.__class__.__name__}"
                ) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise InferenceUnavailable(f"inference answered {response.status_code}")
            if response.status_code != 200:
                raise FileProblem(f"embedding refused: {_error_message(response)}")
            body = response.json()
            rows = sorted(body["data"], key=lambda row: row["index"])
            if len(rows) != len(batch):
                raise InferenceUnavailable("inference returned the wrong number of vectors")
            vectors.extend(row["embedding"] for row in rows)
            model_name = body.get("model") or model_name
        return vectors, model_name


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
