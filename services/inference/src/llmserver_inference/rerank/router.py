"""POST /v1/rerank, thin: validated by the shared model, answered by the Reranker."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_inference.rerank.schemas import RerankRequest, RerankResponse
from llmserver_inference.rerank.service import Reranker

router = APIRouter()


def get_reranker(request: Request) -> Reranker:
    # Cheap: it holds the long-lived model manager of app.state, nothing of its own.
    state = request.app.state
    return Reranker(state.models, state.settings.default_embedding_model)


RerankerDep = Annotated[Reranker, Depends(get_reranker)]


@router.post(
    "/v1/rerank",
    responses={200: {"model": RerankResponse}, **error_responses(400, 404, 500, 503)},
)
async def rerank(body: RerankRequest, reranker: RerankerDep) -> JSONResponse:
    answer = await reranker.rerank(body)
    return JSONResponse(answer.model_dump(exclude_none=True))


# Any other method on this path: 405 with the Allow header.
answer_other_methods(router)
