"""Relevance scores from embeddings, and the ranking a rerank answers with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cosine_scores(query: Sequence[float], documents: Sequence[Sequence[float]]) -> list[float]:
    """The cosine of the query's vector with each document's (the engine's vectors are
    L2-normalised, but a zero vector must not divide by zero)."""
    q = np.asarray(query, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64).reshape(len(documents), -1)
    norms = np.linalg.norm(d, axis=1) * np.linalg.norm(q)
    dots = d @ q
    return [float(x) for x in np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)]


def ranking(scores: Sequence[float], top_n: int | None) -> list[int]:
    """Document indices, most relevant first; ties keep the request's order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order if top_n is None else order[:top_n]
