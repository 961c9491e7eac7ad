"""`python -m llmserver_indexer worker`: the Celery worker (logs Celery's usual "ready.")."""

from __future__ import annotations

import argparse
import logging
import os

from llmserver_common.logs import configure_logging
from llmserver_indexer.app import create_app
from llmserver_indexer.settings import IndexerSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmserver_indexer")
    parser.add_argument("command", choices=["worker"], help="start the Celery worker")
    args = parser.parse_args(argv)

    settings = IndexerSettings()
    configure_logging(settings.log_level)
    if settings.log_level != "DEBUG":
        # One INFO line per upstream request would drown the service's own log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # The readiness line ("celery@host ready.") must show whatever our level.
    logging.getLogger("celery.apps.worker").setLevel(logging.INFO)
    app = create_app(settings)
    if args.command == "worker":
        app.worker_main(
            [
                "worker",
                f"--loglevel={settings.log_level}",
                f"--concurrency={settings.concurrency}",
                f"--hostname=indexer-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--pool=prefork",
            ]
        )


if __name__ == "__main__":
    main()
