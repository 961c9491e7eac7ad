"""The LocalDocs FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from llmserver_common.errors import install_error_handlers
from llmserver_common.openapi import install_openapi
from llmserver_localdocs.openai_files.router import router as files_router
from llmserver_localdocs.openai_files.schemas import FileUpload
from llmserver_localdocs.responses.router import router as responses_router
from llmserver_localdocs.responses.schemas import ResponseObject
from llmserver_localdocs.responses.store import ResponseStore
from llmserver_localdocs.router import router
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.settings import LocalDocsSettings
from llmserver_localdocs.vector_stores.router import router as vector_stores_router
from llmserver_localdocs.watching import watch_folders

logger = logging.getLogger(__name__)

_INTRO = (
    "The LocalDocs service: collections of folders and files indexed for retrieval, their "
    "search and the server-wide active set; OpenAI's Files, Vector Stores and Responses API "
    "over the same collections. The gateway forwards /v1/localdocs/*, /v1/files*, "
    "/v1/vector_stores* and /v1/responses here."
)


async def _rescan_periodically(service: LocalDocsService, interval_s: float) -> None:
    """Queue rescans so changed and removed files are caught without a request."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            queued = await service.rescan_all()
            logger.debug("periodic rescan queued %d collections", queued)
        except Exception as exc:  # an upstream is down: try again next time
            logger.warning("periodic rescan skipped: %s", exc.__class__.__name__)


def create_app(settings: LocalDocsSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = LocalDocsService(settings)
        app.state.service = service
        background: list[asyncio.Task[None]] = []
        if settings.rescan_interval_s > 0:
            background.append(
                asyncio.create_task(_rescan_periodically(service, settings.rescan_interval_s))
            )
        if settings.watch:
            background.append(asyncio.create_task(watch_folders(service, settings)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.close()

    app = FastAPI(title="llmserver localdocs", lifespan=lifespan)
    app.state.settings = settings
    app.state.response_store = ResponseStore(
        settings.responses_ttl_s, settings.responses_max_stored
    )
    install_error_handlers(app)
    app.include_router(router)
    # OpenAI's Files and Vector Stores API over the same collections.
    app.include_router(files_router)
    app.include_router(vector_stores_router)
    app.include_router(responses_router)
    # The upload's form and the Response object (answered as JSON or as events) are documented
    # by hand; their schemas are added to the components here.
    install_openapi(app, intro=_INTRO, body_models=[FileUpload, ResponseObject])
    return app
