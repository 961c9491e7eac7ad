"""The gateway's settings: one class, env prefix GATEWAY_, validated at start-up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmserver_common.settings import check_log_level, split_list

logger = logging.getLogger(__name__)

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# GPT4All's LocalDocs prompt: "### Context:" then one block per snippet, then the user's message.
DEFAULT_SNIPPET_TEMPLATE = "Collection: {collection}\nPath: {path}\nExcerpt: {text}"
DEFAULT_CONTEXT_TEMPLATE = "### Context:\n{snippets}\n\n{message}"


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(4891, ge=1, le=65535)
    log_level: str = "INFO"

    # Upstreams.
    inference_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:4892"]
    localdocs_url: str = "http://127.0.0.1:4893"

    # Timeouts, seconds. Connect is short so "all replicas down" answers 503 well within 2 s.
    connect_timeout_s: float = Field(0.5, gt=0)
    inference_timeout_s: float = Field(600.0, gt=0)
    localdocs_timeout_s: float = Field(30.0, gt=0)
    # LocalDocs retrieval during a chat request: past this the chat answers without references
    # (a slow or Weaviate-less localdocs must not hold every chat for localdocs_timeout_s).
    localdocs_chat_timeout_s: float = Field(3.0, gt=0)
    health_timeout_s: float = Field(1.0, gt=0)
    health_check_interval_s: float = Field(2.0, gt=0)
    retry_after_s: int = Field(1, ge=0)
    # Each inference URL's host name is re-resolved this often and every address it resolves to
    # (all A/AAAA records: `docker compose up --scale inference=3`) is a replica of its own.
    # IP literals and localhost are used as they are; 0 turns resolving off.
    inference_dns_refresh_s: float = Field(5.0, ge=0)

    # Public API behaviour.
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    unknown_model_fallback: bool = False
    default_chat_model: str | None = None
    models_cache_ttl_s: float = Field(5.0, ge=0)
    # GET /v1/models is answered from a copy this young at most (0: always ask inference).
    models_list_cache_ttl_s: float = Field(2.0, ge=0)
    # Largest max_tokens / max_completion_tokens accepted; larger is a 400 (a request asking for
    # 10**30 tokens would otherwise generate until the context is full).
    max_tokens_cap: int = Field(4096, ge=1)
    # Set where binding 0.0.0.0 is intended and the port is published on loopback only (the
    # container in compose.yaml): the "reachable from other machines" warning becomes info.
    public_bind_acknowledged: bool = False
    # The web page's built bundle (index.html and web/); unset: the one `make setup` builds.
    web_dir: Path | None = None

    # LocalDocs in chat.
    localdocs_k: int = Field(3, ge=1, le=100)
    localdocs_active_cache_ttl_s: float = Field(1.0, ge=0)
    localdocs_snippet_template: str = DEFAULT_SNIPPET_TEMPLATE
    localdocs_context_template: str = DEFAULT_CONTEXT_TEMPLATE

    @field_validator("inference_urls", "cors_origins", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("inference_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one inference URL is required")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")
        return [url.rstrip("/") for url in urls]

    @field_validator("localdocs_url")
    @classmethod
    def _check_localdocs_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        return url.rstrip("/")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_off(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, level: str) -> str:
        return check_log_level(level)

    @model_validator(mode="after")
    def _check_templates(self) -> GatewaySettings:
        # Fail at start-up, not on the first chat request, if a template names unknown fields.
        try:
            self.localdocs_snippet_template.format(
                collection="c",
                path="p",
                file="f",
                text="t",
                title="",
                author="",
                date="",
                page="",
                score=0.0,
                index=1,
            )
            self.localdocs_context_template.format(snippets="s", message="m")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad LocalDocs template: {exc}") from exc
        if "{message}" not in self.localdocs_context_template:
            raise ValueError("localdocs_context_template must contain {message}")
        return self

    def warn_if_exposed(self) -> None:
        if self.host in _LOOPBACK_HOSTS:
            return
        if self.public_bind_acknowledged:
            logger.info(
                "gateway binds %s (acknowledged: the host publishes the port on loopback only)",
                self.host,
            )
            return
        logger.warning(
            "gateway binds %s, not loopback: it is reachable from other machines%s",
            self.host,
            "" if self.api_key else " and no API key is set",
        )
