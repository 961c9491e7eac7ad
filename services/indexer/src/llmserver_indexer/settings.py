"""Indexer worker settings (env prefix INDEXER_), validated at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmserver_common.settings import DocumentServiceSettings


class IndexerSettings(DocumentServiceSettings):
    """Connections (Redis, inference, Weaviate), allowed roots and log level: see the base."""

    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore")

    tika_url: str = "http://127.0.0.1:4900"

    # Celery worker
    concurrency: int = Field(default=2, ge=1, le=64)
    # A message taken by a worker that died is handed out again after this long.
    visibility_timeout_s: int = Field(default=3600, ge=10)
    task_max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_max_s: int = Field(default=60, ge=1)
    # Rescan every collection when a worker starts, re-queueing files a dead worker held. Off
    # only to test Celery's own redelivery (acks_late, reject_on_worker_lost) on its own.
    recover_on_start: bool = True

    # Extraction, chunking, embedding, writing
    tika_timeout_s: float = Field(default=120.0, gt=0)
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_files_per_collection: int = Field(default=10_000, ge=1)
    chunk_size: int = Field(default=512, ge=32, le=8192)
    chunk_overlap: int = Field(default=64, ge=0)
    embed_batch_size: int = Field(default=32, ge=1, le=1024)
    embed_timeout_s: float = Field(default=120.0, gt=0)
    write_batch_size: int = Field(default=100, ge=1, le=5000)
