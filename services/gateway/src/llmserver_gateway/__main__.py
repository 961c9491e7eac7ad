"""`python -m llmserver_gateway`: settings from GATEWAY_* env vars, then uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from llmserver_common.logs import configure_logging
from llmserver_gateway.app import create_app
from llmserver_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


def main() -> int:
    configure_logging("INFO")
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        logger.error("invalid GATEWAY_* settings:\n%s", exc)
        return 2
    configure_logging(settings.log_level)
    if settings.log_level != "DEBUG":
        # httpx logs every upstream request at INFO: a line per chat costs ~0.3 ms of the
        # latency budget, and the metrics already count them.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # Named rather than "auto", which would silently fall back to the slower pure-Python
        # asyncio loop and h11 parser if uvicorn[standard]'s extras were missing.
        loop="uvloop",
        http="httptools",
        # Our metrics count requests; per-request access lines would only cost time.
        access_log=False,
        # The gateway never reads the client's address: no X-Forwarded-* parsing per request.
        proxy_headers=False,
        log_config=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
