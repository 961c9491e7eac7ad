"""LocalDocs API settings (env prefix LOCALDOCS_), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from llmserver_common.settings import DocumentServiceSettings, split_list

# The types OpenAI's file_search accepts, and the other office and text formats Tika reads.
UPLOAD_EXTENSIONS = (
    "c cpp cs css csv doc docx eml epub go htm html java js json log md odp ods odt pdf php "
    "ppt pptx py rb rst rtf sh tex ts txt xls xlsx xml yaml yml"
).split()


class LocalDocsSettings(DocumentServiceSettings):
    """Connections (Redis, inference, Weaviate), allowed roots and log level: see the base."""

    model_config = SettingsConfigDict(env_prefix="LOCALDOCS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4893, ge=1, le=65535)

    # 0 = BM25 only, 1 = vectors only. 0.7: the best recall@3 and MRR of bench_retrieval.py
    # (0.965 / 0.895 against 0.947 / 0.869 at 0.5, on its 57 questions).
    search_alpha: float = Field(default=0.7, ge=0.0, le=1.0)
    search_k: int = Field(default=3, ge=1, le=100)
    search_max_k: int = Field(default=50, ge=1, le=1000)
    # Opt-in rerank stage: the top rerank_candidates hybrid hits reordered by the inference
    # service's /v1/rerank with this model (an embedding model: cosine of query and snippet).
    # Off by default: bench_retrieval.py measured no gain (top 20 reranked by MiniLM: recall@3
    # 0.965, recall@1 0.825, MRR 0.897 against 0.965 / 0.842 / 0.895) for ~70x the search time.
    rerank_model: str | None = None
    rerank_candidates: int = Field(default=20, ge=1, le=1000)
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

    # OpenAI's Files and Vector Stores API (/v1/files, /v1/vector_stores). Uploads are kept
    # under openai_dir (files/ and vector_stores/); it is added to allowed_roots here, and the
    # indexer must be allowed to read it too (devstack and compose.yaml give both the same
    # folder). Unset: those routes answer that uploads are not configured.
    openai_dir: Path | None = None
    files_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # Longest a /v1/responses request waits for its chat completion from the inference service.
    responses_timeout_s: float = Field(default=600.0, gt=0)
    # Responses kept for `previous_response_id` and GET/DELETE /v1/responses/{id}: in this
    # process's memory (lost on restart), each for responses_ttl_s, the oldest dropped past
    # responses_max_stored.
    responses_ttl_s: float = Field(default=3600.0, gt=0)
    responses_max_stored: int = Field(default=1000, ge=1)
    files_extensions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(UPLOAD_EXTENSIONS)
    )

    @field_validator("files_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("files_extensions")
    @classmethod
    def _bare_extensions(cls, value: list[str]) -> list[str]:
        return [ext.strip().lower().lstrip(".") for ext in value if ext.strip()]

    @field_validator("openai_dir")
    @classmethod
    def _absolute_openai_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"'{value}' is not an absolute path")
        return value.resolve() if value is not None else None

    @model_validator(mode="after")
    def _uploads_allowed(self) -> LocalDocsSettings:
        if self.openai_dir is not None and self.openai_dir not in self.allowed_roots:
            self.allowed_roots.append(self.openai_dir)
        return self
