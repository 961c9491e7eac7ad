"""python -m llmserver_inference: settings, logging, uvicorn."""

from __future__ import annotations

import uvicorn

from llmserver_common.logs import configure_logging
from llmserver_inference.app import create_app
from llmserver_inference.settings import InferenceSettings


def main() -> None:
    settings = InferenceSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # The logging set-up above is the one in force.
        log_config=None,
    )


if __name__ == "__main__":
    main()
