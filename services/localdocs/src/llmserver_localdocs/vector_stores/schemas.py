"""OpenAI's vector store requests and objects, as the official clients send and read them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserver_localdocs.schemas import UnavailablePath

# `attributes` values: strings, booleans or numbers (bool first: True is no number here).
AttributeValue = bool | str | float


class _Request(BaseModel):
    # Unknown fields are ignored, as everywhere in the API (clients send new ones all the time).
    model_config = ConfigDict(extra="ignore")


class ExpiresAfter(_Request):
    anchor: Literal["last_active_at"] = "last_active_at"
    days: int = Field(ge=1, le=365)


class CreateVectorStoreRequest(_Request):
    name: str | None = Field(default=None, max_length=256)
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None
    # Accepted; LocalDocs chunks every file its own way (reported as {"type": "other"}).
    chunking_strategy: dict[str, Any] | None = None


class ModifyVectorStoreRequest(_Request):
    name: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None


class AttachFileRequest(_Request):
    file_id: str = Field(min_length=1)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None


class UpdateFileRequest(_Request):
    attributes: dict[str, AttributeValue] | None


class BatchFile(_Request):
    file_id: str = Field(min_length=1)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None


class CreateBatchRequest(_Request):
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    files: list[BatchFile] | None = Field(default=None, max_length=2000)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None


class ComparisonFilter(_Request):
    key: str = Field(min_length=1)
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    value: bool | str | float | list[str | float]


class CompoundFilter(_Request):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter] = Field(min_length=1)


class RankingOptions(_Request):
    ranker: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class SearchRequest(_Request):
    query: str | list[str]
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None
    # Accepted; the query is searched as given (hybrid BM25 + vectors needs no rewriting).
    rewrite_query: bool = False


# -- answers ----------------------------------------------------------------------------------


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]
    # Ours: the LocalDocs collection it is (same name), and its paths a scan could not read.
    localdocs_collection: str
    unavailable_paths: list[UnavailablePath]


class VectorStoreList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStore]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedVectorStore(BaseModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    usage_bytes: int
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: LastError | None
    attributes: dict[str, AttributeValue]
    chunking_strategy: dict[str, Any] = {"type": "other"}


class VectorStoreFileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedVectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class FileBatch(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class SearchContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue]
    content: list[SearchContent]
    # Ours: the 1-based page of a paged document (PDF) where the snippet starts, else null.
    page: int | None


class SearchPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: str | list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None
