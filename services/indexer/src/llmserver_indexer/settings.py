"""Indexer worker settings (env prefix INDEXER_), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmserver_common.settings import absolute_paths, check_log_level, split_list


class IndexerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore")

    log_level: str = "INFO"
    redis_url: str = "redis://127.0.0.1:4901/0"
    inference_url: str = "http://127.0.0.1:4892"
    tika_url: str = "http://127.0.0.1:4900"
    weaviate_url: str = "http://127.0.0.1:4894"
    weaviate_grpc_port: int = Field(default=4895, ge=1, le=65535)
    weaviate_api_key: str | None = None
    allowed_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Celery worker
    concurrency: int = Field(default=2, ge=1, le=64)
    # A message taken by a worker that died is handed out again after this long.
    visibility_timeout_s: int = Field(default=3600, ge=10)
    task_max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_max_s: int = Field(default=60, ge=1)

    # Extraction, chunking, embedding, writing
    tika_timeout_s: float = Field(default=120.0, gt=0)
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_files_per_collection: int = Field(default=10_000, ge=1)
    chunk_size: int = Field(default=512, ge=32, le=8192)
    chunk_overlap: int = Field(default=64, ge=0)
    embed_batch_size: int = Field(default=32, ge=1, le=1024)
    embed_timeout_s: float = Field(default=120.0, gt=0)
    write_batch_size: int = Field(default=100, ge=1, le=5000)
    # Empty: the inference service's default embedding model (its name is then recorded).
    embedding_model: str | None = None

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("allowed_roots")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        return absolute_paths(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return check_log_level(value)
