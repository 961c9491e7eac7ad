"""The Celery application of the indexer worker, built from its settings."""

from __future__ import annotations

from celery import Celery

from llmserver_common import docstore
from llmserver_indexer.settings import IndexerSettings


def create_app(settings: IndexerSettings) -> Celery:
    """A Celery app whose tasks survive a worker killed mid-file (acks late, requeue on loss)."""
    app = Celery("llmserver_indexer", broker=settings.redis_url)
    app.conf.update(
        task_default_queue=docstore.INDEX_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A message is acknowledged only after its task finished; a worker that dies (even by
        # SIGKILL) leaves it unacknowledged, and the broker hands it out again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        # Our logging setup (llmserver_common.logs) stays in charge.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    # Imported here so the task module can use the app and settings without a global.
    from llmserver_indexer.tasks import register_tasks

    register_tasks(app, settings)
    return app
