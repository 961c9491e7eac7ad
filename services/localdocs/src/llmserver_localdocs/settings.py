"""LocalDocs API settings (env prefix LOCALDOCS_), validated at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from llmserver_common.settings import DocumentServiceSettings


class LocalDocsSettings(DocumentServiceSettings):
    """Connections (Redis, inference, Weaviate), allowed roots and log level: see the base."""

    model_config = SettingsConfigDict(env_prefix="LOCALDOCS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4893, ge=1, le=65535)

    search_alpha: float = Field(default=0.5, ge=0.0, le=1.0)  # 0 = BM25 only, 1 = vector only
    search_k: int = Field(default=3, ge=1, le=100)
    search_max_k: int = Field(default=50, ge=1, le=1000)
    max_paths_per_request: int = Field(default=100, ge=1)
    # Seconds between automatic rescans of every collection (changed and removed files); 0: off.
    rescan_interval_s: float = Field(default=300.0, ge=0)
    # Live folders: file system events (inotify) on the collections' paths queue a scan of what
    # changed once a folder is quiet for watch_debounce_s (at most watch_max_delay_s after the
    # first event); missing paths are looked for every watch_refresh_s; more changed paths than
    # watch_max_paths in one go make a full scan.
    watch: bool = True
    watch_debounce_s: float = Field(default=0.5, ge=0.05, le=60)
    watch_max_delay_s: float = Field(default=3.0, ge=0.1, le=600)
    watch_refresh_s: float = Field(default=2.0, ge=0.1, le=3600)
    watch_max_paths: int = Field(default=500, ge=1)
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    # Longest a search (or the health check) waits on Weaviate before answering 503: the
    # client retries a refused gRPC search for ~63 s on its own, far too long for a chat.
    # Also the client's connect and query timeouts. Deletes get upstream_timeout_s.
    weaviate_timeout_s: float = Field(default=2.0, gt=0)
