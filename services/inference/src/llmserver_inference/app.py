"""create_app(settings): the FastAPI app with the model manager on app.state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmserver_common.errors import install_error_handlers
from llmserver_common.openapi import install_openapi
from llmserver_inference.catalog import ModelCatalog
from llmserver_inference.lifecycle.router import router as lifecycle_router
from llmserver_inference.models import ModelManager
from llmserver_inference.rerank.router import router as rerank_router
from llmserver_inference.router import router
from llmserver_inference.service import InferenceService
from llmserver_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)


async def _preload(service: InferenceService, names: list[str]) -> None:
    """Loads the start-up models; /health answers 503 until this is done."""
    try:
        for name in names:
            entry = service.models.catalog.resolve(name)
            if entry is None:
                logger.warning("preload: model %r is not installed; skipped", name)
                continue
            try:
                await service.models.get(entry)
            except Exception:
                logger.exception("preload of %s failed", entry.name)
    finally:
        service.ready = True


def create_app(settings: InferenceSettings) -> FastAPI:
    catalog = ModelCatalog(settings.models_dir)
    models = ModelManager(settings, catalog)
    service = InferenceService(settings, models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        names = list(settings.preload)
        if settings.preload_defaults:
            names += [settings.default_chat_model, settings.default_embedding_model]
        task = asyncio.create_task(_preload(service, names))
        expiry = asyncio.create_task(models.run_idle_expiry())
        try:
            yield
        finally:
            task.cancel()
            expiry.cancel()
            await models.close()

    app = FastAPI(
        title="llmserver inference",
        summary="llama.cpp behind the OpenAI API; called by the gateway and localdocs",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.models = models
    app.state.service = service
    install_error_handlers(app)
    # Before the main router, whose /v1/models/{name} answers 405 to POST on these paths.
    app.include_router(lifecycle_router)
    app.include_router(router)
    app.include_router(rerank_router)
    install_openapi(app)
    return app
