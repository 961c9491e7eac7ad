"""Celery tasks: thin wrappers around llmserver_indexer.service.Indexer with retry policy."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown

from llmserver_common import docstore
from llmserver_indexer.extract import FileProblem
from llmserver_indexer.service import Indexer
from llmserver_indexer.settings import IndexerSettings

logger = logging.getLogger(__name__)

RECOVERY_OFF_LINE = "start-up recovery is off (INDEXER_RECOVER_ON_START=false)"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}"[:200] if text else exc.__class__.__name__


def _changed_paths(value: Any) -> list[str] | None:
    """The folder watcher's changed paths, or None for a full scan."""
    if value is None:
        return None
    return [str(path) for path in value if isinstance(path, str) and path]


def register_tasks(app: Celery, settings: IndexerSettings) -> Indexer:
    """Register the tasks on `app` by their public names (the API sends them by name)."""

    def send(task_name: str, args: list[Any]) -> None:
        app.send_task(task_name, args=args, queue=docstore.INDEX_QUEUE)

    indexer = Indexer(settings, send)
    app.conf.indexer = indexer  # reachable from tests and signal handlers

    def backoff(retries: int) -> int:
        return min(2**retries, settings.retry_backoff_max_s)

    @app.task(name=docstore.TASK_INDEX_FILE, bind=True, max_retries=settings.task_max_retries)
    def index_file(self: Task, name: str, uid: str, path: str, generation: str) -> str:
        try:
            outcome = indexer.index_file(name, uid, path, generation)
        except FileProblem as exc:
            logger.info("failed %s: %s", path, exc)
            indexer.fail_file(name, path, generation, str(exc))
            return "failed"
        except Exception as exc:
            # Tika, inference, Weaviate or Redis unreachable or refusing: try again later.
            if self.request.retries >= settings.task_max_retries:
                logger.warning("giving up on %s: %s", path, _reason(exc))
                indexer.fail_file(
                    name,
                    path,
                    generation,
                    f"gave up after {self.request.retries + 1} tries: {_reason(exc)}",
                )
                return "failed"
            logger.warning("retrying %s: %s", path, _reason(exc))
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        logger.info("%s: %s", path, outcome)
        return outcome

    @app.task(name=docstore.TASK_SCAN_COLLECTION, bind=True, max_retries=settings.task_max_retries)
    def scan_collection(
        self: Task, name: str, uid: str, options: dict[str, Any] | None = None
    ) -> str:
        options = options or {}
        try:
            result = indexer.scan_collection(
                name,
                uid,
                retry_failed=bool(options.get("retry_failed")),
                requeue_pending=bool(options.get("requeue_pending")),
                paths=_changed_paths(options.get("paths")),
            )
        except Exception as exc:
            if self.request.retries >= settings.task_max_retries:
                logger.warning("giving up scanning %s: %s", name, _reason(exc))
                indexer.fail_scan(name, uid, f"scan failed: {_reason(exc)}")
                return "failed"
            logger.warning("retrying scan of %s: %s", name, _reason(exc))
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        return "gone" if result is None else f"queued {result.queued}"

    @worker_ready.connect(weak=False)
    def _recover(**_: Any) -> None:
        if not settings.recover_on_start:
            logger.warning(RECOVERY_OFF_LINE)
            return
        try:
            count = indexer.recover()
            logger.info("recovery: rescanning %d collections", count)
        except Exception as exc:  # Redis may be down; the periodic rescan will catch up
            logger.warning("recovery skipped: %s", _reason(exc))

    @worker_shutdown.connect(weak=False)
    def _close(**_: Any) -> None:
        indexer.close()

    return indexer
