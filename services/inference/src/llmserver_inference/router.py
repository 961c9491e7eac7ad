"""Thin routes: validate, hand to the service, return."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from llmserver_common.openai_api import EVENT_STREAM
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_inference.metrics import CONTENT_TYPE_LATEST
from llmserver_inference.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingList,
    EmbeddingRequest,
    InferenceHealth,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from llmserver_inference.service import InferenceService

router = APIRouter()


def get_service(request: Request) -> InferenceService:
    return request.app.state.service


# The service lives on app.state; routes reach it through this dependency.
ServiceDep = Annotated[InferenceService, Depends(get_service)]


@router.get(
    "/health",
    response_model=InferenceHealth,
    responses={503: {"model": InferenceHealth, "description": "The start-up models are loading."}},
)
async def health(service: ServiceDep) -> JSONResponse:
    # 503 only until the start-up models are loaded. A model loaded on demand later does not
    # stop this replica serving the others, so it is reported in the body, not as "down": the
    # gateway would otherwise route around (or refuse with 503) a replica that works.
    # Nothing here may touch the disk or wait on a lock: the answer must stay fast under load.
    starting = not service.ready
    body: dict[str, Any] = {
        "status": "loading" if starting else "ok",
        "loading": service.models.loading,
        "loaded": [m.entry.name for m in service.models.loaded_models()],
    }
    return JSONResponse(body, status_code=503 if starting else 200)


@router.get("/metrics", include_in_schema=False)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> ModelList:
    return service.list_models()


@router.get("/v1/models/{name:path}", response_model=ModelCard, responses=error_responses(404))
async def get_model(name: str, service: ServiceDep) -> ModelCard:
    return service.get_model(name)


# Generation: JSON, or Server-Sent Events with stream: true.
_GENERATION_ERRORS = error_responses(400, 404, 429, 500, 503)


def _generated(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    ok = {
        "model": model,
        "description": "The answer; an event stream with stream: true.",
        "content": EVENT_STREAM,
    }
    return {200: ok, **_GENERATION_ERRORS}


@router.post("/v1/chat/completions", responses=_generated(ChatCompletion))
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: ServiceDep
) -> Any:
    return await service.chat_completion(body, request)


@router.post("/v1/completions", responses=_generated(Completion))
async def completions(body: CompletionRequest, request: Request, service: ServiceDep) -> Any:
    return await service.completion(body, request)


@router.post(
    "/v1/embeddings",
    responses={200: {"model": EmbeddingList}, **error_responses(400, 404, 500, 503)},
)
async def embeddings(body: EmbeddingRequest, service: ServiceDep) -> dict[str, Any]:
    return await service.embeddings(body)


@router.post("/tokenize", response_model=TokenizeResponse, responses=error_responses(400, 404, 500))
async def tokenize(body: TokenizeRequest, service: ServiceDep) -> TokenizeResponse:
    return TokenizeResponse(tokens=await service.tokenize(body))


@router.post(
    "/detokenize", response_model=DetokenizeResponse, responses=error_responses(400, 404, 500)
)
async def detokenize(body: DetokenizeRequest, service: ServiceDep) -> DetokenizeResponse:
    return DetokenizeResponse(content=await service.detokenize(body))


# Any other method on these paths: 405 with the whole Allow header.
answer_other_methods(router)
