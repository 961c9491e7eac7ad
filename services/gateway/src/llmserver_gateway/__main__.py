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
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # Our metrics count requests; per-request access lines would only cost time.
        access_log=False,
        log_config=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
