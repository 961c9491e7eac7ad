"""LocalDocs API settings (env prefix LOCALDOCS_), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmserver_common.settings import absolute_paths, check_log_level, split_list


class LocalDocsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCALDOCS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4893, ge=1, le=65535)
    log_level: str = "INFO"
    redis_url: str = "redis://127.0.0.1:4901/0"
    inference_url: str = "http://127.0.0.1:4892"
    weaviate_url: str = "http://127.0.0.1:4894"
    weaviate_grpc_port: int = Field(default=4895, ge=1, le=65535)
    weaviate_api_key: str | None = None
    allowed_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Empty: the inference service's default embedding model. A collection records the model
    # its chunks were embedded with, and queries on it use that one.
    embedding_model: str | None = None
    search_alpha: float = Field(default=0.5, ge=0.0, le=1.0)  # 0 = BM25 only, 1 = vector only
    search_k: int = Field(default=3, ge=1, le=100)
    search_max_k: int = Field(default=50, ge=1, le=1000)
    max_paths_per_request: int = Field(default=100, ge=1)
    # Seconds between automatic rescans of every collection (changed and removed files); 0: off.
    rescan_interval_s: float = Field(default=300.0, ge=0)
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    # Longest a search (or the health check) waits on Weaviate before answering 503: the
    # client retries a refused gRPC search for ~63 s on its own, far too long for a chat.
    # Also the client's connect and query timeouts. Deletes get upstream_timeout_s.
    weaviate_timeout_s: float = Field(default=2.0, gt=0)

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
