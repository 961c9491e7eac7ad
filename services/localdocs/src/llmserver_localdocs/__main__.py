"""`python -m llmserver_localdocs`: the LocalDocs API on settings.host:settings.port."""

from __future__ import annotations

import logging

import uvicorn

from llmserver_common.logs import configure_logging
from llmserver_localdocs.app import create_app
from llmserver_localdocs.settings import LocalDocsSettings


def main() -> None:
    settings = LocalDocsSettings()
    configure_logging(settings.log_level)
    if settings.log_level != "DEBUG":
        # One INFO line per upstream request would drown the service's own log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
