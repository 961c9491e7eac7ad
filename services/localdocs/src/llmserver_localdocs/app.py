"""The LocalDocs FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from llmserver_common.errors import install_error_handlers
from llmserver_localdocs.router import router
from llmserver_localdocs.service import LocalDocsService
from llmserver_localdocs.settings import LocalDocsSettings

logger = logging.getLogger(__name__)


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
        rescan: asyncio.Task[None] | None = None
        if settings.rescan_interval_s > 0:
            rescan = asyncio.create_task(_rescan_periodically(service, settings.rescan_interval_s))
        try:
            yield
        finally:
            if rescan is not None:
                rescan.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await rescan
            await service.close()

    app = FastAPI(title="llmserver localdocs", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    return app
