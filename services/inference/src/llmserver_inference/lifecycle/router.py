"""Model lifecycle routes: the loaded models with their memory, load (with an idle TTL), unload.

Included before the main router: its `/v1/models/{name:path}` route answers 405 to any other
method on paths these POST routes serve.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from llmserver_common.model_lifecycle_api import (
    LoadedModel,
    LoadedModelList,
    LoadModelRequest,
    UnloadedModel,
)
from llmserver_common.openapi import error_responses
from llmserver_common.routing import answer_other_methods
from llmserver_inference import models as loaded_models
from llmserver_inference.models import ModelManager

router = APIRouter(tags=["models"])


def get_models(request: Request) -> ModelManager:
    return request.app.state.models


ModelsDep = Annotated[ModelManager, Depends(get_models)]


def describe(models: ModelManager, loaded: loaded_models.LoadedModel) -> LoadedModel:
    return LoadedModel(
        id=loaded.entry.name,
        filename=loaded.entry.filename,
        kind="embedding" if loaded.entry.kind == "embedding" else "chat",
        size_bytes=loaded.size_bytes,
        busy=loaded.engine.busy,
        ttl=loaded.ttl_s,
        expires_in=models.idle_seconds_left(loaded),
    )


@router.get("/v1/loaded_models", response_model=LoadedModelList)
async def list_loaded(models: ModelsDep) -> LoadedModelList:
    return LoadedModelList(data=[describe(models, m) for m in models.loaded_models()])


@router.post(
    "/v1/models/{name:path}/load",
    response_model=LoadedModel,
    responses=error_responses(400, 404, 500),
)
async def load(
    name: str,
    models: ModelsDep,
    body: Annotated[LoadModelRequest | None, Body()] = None,
) -> LoadedModel:
    entry = models.resolve_installed(name)
    loaded = await models.load(entry, body.ttl if body is not None else None)
    return describe(models, loaded)


@router.post(
    "/v1/models/{name:path}/unload",
    response_model=UnloadedModel,
    responses=error_responses(404, 409),
)
async def unload(name: str, models: ModelsDep) -> UnloadedModel:
    entry = models.resolve_installed(name)
    return UnloadedModel(id=entry.name, unloaded=await models.unload_idle(entry))


answer_other_methods(router)
