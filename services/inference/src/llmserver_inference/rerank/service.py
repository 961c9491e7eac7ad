"""The rerank logic: the query and each document embedded by an embedding model of the
catalog, documents scored by the cosine of their vector with the query's.

This is a bi-encoder rerank (what LocalAI and llama-server do with a pooled model is a
cross-encoder's score); no cross-encoder ships in a PyPI package we could install, so the
catalog's embedding models serve it. Inputs longer than the model's input are cut as
/v1/embeddings cuts them (models with max_input_tokens) or refused with 400 naming the field.
"""

from __future__ import annotations

import asyncio
import logging

from llmserver_common.errors import APIError, invalid_request, model_not_found
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.embedding import EmbeddingEngine
from llmserver_inference.models import LoadedEmbeddingModel, ModelManager
from llmserver_inference.request_params import require_encodable
from llmserver_inference.rerank.schemas import (
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankUsage,
)
from llmserver_inference.rerank.scoring import cosine_scores, ranking
from llmserver_inference.service import fit_embedding_input

logger = logging.getLogger(__name__)


class Reranker:
    def __init__(self, models: ModelManager, default_model: str) -> None:
        self.models = models
        self.default_model = default_model

    def resolve(self, name: str | None) -> ModelEntry:
        wanted = name or self.default_model
        entry = self.models.catalog.resolve(wanted)
        if entry is None:
            raise model_not_found(wanted, self.models.catalog.installed_names())
        if entry.kind != "embedding":
            raise invalid_request(
                f"The model '{entry.name}' cannot rerank (its kind: {entry.kind}); "
                "rerank needs an embedding model.",
                param="model",
                code="model_not_supported",
            )
        return entry

    async def rerank(self, body: RerankRequest) -> RerankResponse:
        texts = body.texts()
        require_encodable(body.query, "query")
        for i, text in enumerate(texts):
            require_encodable(text, f"documents.{i}")
        entry = self.resolve(body.model)
        loaded = await self.models.get(entry)
        assert isinstance(loaded, LoadedEmbeddingModel)
        engine = loaded.engine
        inputs = [_fit(engine, entry, entry.query_prefix + body.query, "query")]
        inputs += [
            _fit(engine, entry, entry.document_prefix + text, f"documents.{i}")
            for i, text in enumerate(texts)
        ]
        try:
            vectors = await asyncio.to_thread(engine.embed, inputs)
        except RuntimeError as exc:
            logger.error("rerank embedding failed: %s", exc)
            raise APIError(500, "The embedding model failed.", type="internal_error") from None
        scores = cosine_scores(vectors[0], vectors[1:])
        results = [
            RerankResult(
                index=i,
                relevance_score=scores[i],
                document=RerankDocument(text=texts[i]) if body.return_documents else None,
            )
            for i in ranking(scores, body.top_n)
        ]
        n_tokens = sum(len(tokens) for tokens in inputs)
        return RerankResponse(
            results=results,
            model=entry.name,
            usage=RerankUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
        )


def _fit(engine: EmbeddingEngine, entry: ModelEntry, text: str, param: str) -> list[int]:
    limit = engine.max_input_tokens
    if entry.max_input_tokens is not None:
        limit = min(limit, entry.max_input_tokens)
    try:
        return fit_embedding_input(
            engine.tokenize(text),
            limit,
            truncate=entry.max_input_tokens is not None,
            end_token=engine.end_token,
        )
    except APIError as exc:
        exc.param = param
        exc.message = exc.message.replace("an input", f"'{param}'")
        raise
