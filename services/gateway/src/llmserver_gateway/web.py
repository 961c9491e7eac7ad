"""The web page at `/`: the bundle `make setup` builds from services/gateway/web into its dist/.

`/` is the page and `/web/...` its scripts and styles, same origin as the API. They are static
files holding no data, so they are served without the API key (a browser cannot send one when
it opens a page); the page asks for the key and sends it with every API call.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from llmserver_common.errors import APIError

logger = logging.getLogger(__name__)

# services/gateway/web/dist in a source checkout (the package is installed editable).
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"
PAGE_PATH = "/"
ASSETS_PREFIX = "/web/"


def install_web(app: FastAPI, folder: Path | None = None) -> None:
    """Serve the built page at `/` and its assets under `/web/`, when the bundle exists.

    `folder` is GATEWAY_WEB_DIR; unset, the bundle `make setup` builds in the checkout.
    """
    folder = folder or DEFAULT_WEB_DIR
    index = folder / "index.html"
    assets = folder / ASSETS_PREFIX.strip("/")
    built = index.is_file() and assets.is_dir()
    if built:
        app.mount(ASSETS_PREFIX.rstrip("/"), StaticFiles(directory=assets), name="web")
        logger.info("web page at %s from %s", PAGE_PATH, folder)
    else:
        logger.warning("no web page: %s is not built (run `make setup`)", folder)

    @app.get(PAGE_PATH, include_in_schema=False)
    async def page() -> FileResponse:
        if not built:
            raise APIError(
                404,
                f"The web page is not built: run `make setup` (looked in {folder}).",
                code="web_page_not_built",
            )
        # Always revalidated: a rebuilt bundle shows on the next load.
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
