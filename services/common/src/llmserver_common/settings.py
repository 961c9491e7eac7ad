"""Validators every service's settings class shares (one place, not four copies), and the
connection settings the two document services (localdocs API, indexer worker) both need."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode


def split_list(value: Any) -> Any:
    """A list setting given as a JSON list or a comma-separated string (docs/DEVELOPING.md)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_log_level(level: str) -> str:
    name = level.upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}")
    return name


def absolute_paths(paths: list[Path]) -> list[Path]:
    """Folders such as ALLOWED_ROOTS: absolute, symlinks resolved."""
    for path in paths:
        if not path.is_absolute():
            raise ValueError(f"'{path}' is not an absolute path")
    return [path.resolve() for path in paths]


class DocumentServiceSettings(BaseSettings):
    """What the localdocs API and the indexer both connect to; each subclass sets its prefix."""

    log_level: str = "INFO"
    redis_url: str = "redis://127.0.0.1:4901/0"
    inference_url: str = "http://127.0.0.1:4892"
    weaviate_url: str = "http://127.0.0.1:4894"
    weaviate_grpc_port: int = Field(default=4895, ge=1, le=65535)
    weaviate_api_key: str | None = None
    # Folders whose files may be indexed; both check it (the API on request, the worker again).
    allowed_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # Empty: the inference service's default embedding model. A collection records the model
    # its chunks were embedded with, and queries on it use that one.
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
