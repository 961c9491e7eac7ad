"""Prometheus metrics of one inference replica, in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "InferenceMetrics"]


class InferenceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # How much embedding work callers asked for: the indexer's documents and localdocs'
        # queries apart, so re-indexing unchanged content shows up as documents embedded.
        self.embedding_requests = Counter(
            "inference_embedding_requests_total",
            "Embedding requests answered",
            ["input_type"],
            registry=self.registry,
        )
        self.embedding_inputs = Counter(
            "inference_embedding_inputs_total",
            "Texts embedded",
            ["input_type"],
            registry=self.registry,
        )

    def count_embeddings(self, input_type: str | None, inputs: int) -> None:
        label = input_type or "unspecified"
        self.embedding_requests.labels(label).inc()
        self.embedding_inputs.labels(label).inc(inputs)

    def render(self) -> bytes:
        return generate_latest(self.registry)
