"""The request and answer models of OpenAI's Files and Vector Stores API, as the localdocs
service serves them, importable without its dependencies (the Responses API's models:
openai_responses_api).

The localdocs service validates and answers with these, and the gateway, which forwards
/v1/files* and /v1/vector_stores* to it, documents the same ones: one set of models. The limits
the service also checks in code (OpenAI's: `metadata` and `attributes` keys and values, id
formats) are written into the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from llmserver_common.localdocs_api import UnavailablePath
from llmserver_common.openai_api import integer

# The ids this server makes (`file-`, `vs_`, `vsfb_` and 24 hex digits); a vector store's id is
# also its LocalDocs collection's name, so its pattern stays within collection names.
FILE_ID_PATTERN = r"^file-[A-Za-z0-9_-]{1,64}$"
VECTOR_STORE_ID_PATTERN = r"^vs_[A-Za-z0-9_-]{1,61}$"
BATCH_ID_PATTERN = r"^vsfb_[A-Za-z0-9_-]{1,64}$"

Order = Literal["asc", "desc"]

# OpenAI's purposes; every one is accepted and stored, any may be put in a vector store.
PURPOSES = (
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "vision",
    "user_data",
    "evals",
)
Purpose = Literal[
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "vision",
    "user_data",
    "evals",
]

# OpenAI's limits on key-value maps: at most 16 keys of 1 to 64 characters, strings of at most
# 512 characters.
_Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_Text = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[_Key, _Text], Field(max_length=16)]
# `attributes` values: strings, booleans or numbers (bool first: True is no number here).
AttributeValue = bool | _Text | float
Attributes = Annotated[dict[_Key, AttributeValue], Field(max_length=16)]


class _Request(BaseModel):
    # Unknown fields are ignored, as everywhere in the API (clients send new ones all the time);
    # types are strict.
    model_config = ConfigDict(extra="ignore", strict=True)


# -- files ------------------------------------------------------------------------------------


# The file name an upload's example carries: a format every server extracts text from.
UPLOAD_NAME = {"file": "notes.txt"}


class FileUpload(BaseModel):
    """The multipart/form-data body of POST /v1/files (documentation only: the route reads
    the form itself, streaming the file to disk)."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"},
        description="The file; its name's extension must be one the server extracts text from.",
    )
    purpose: Purpose


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileObjectList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedFile(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


# -- vector stores: requests ------------------------------------------------------------------


class ExpiresAfter(_Request):
    anchor: Literal["last_active_at"] = "last_active_at"
    days: integer(ge=1, le=365)


class CreateVectorStoreRequest(_Request):
    name: str | None = Field(default=None, max_length=256)
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    metadata: Metadata | None = None
    expires_after: ExpiresAfter | None = None
    # Accepted; LocalDocs chunks every file its own way (reported as {"type": "other"}).
    chunking_strategy: dict[str, Any] | None = None


class ModifyVectorStoreRequest(_Request):
    name: str | None = Field(default=None, max_length=256)
    metadata: Metadata | None = None
    expires_after: ExpiresAfter | None = None


class AttachFileRequest(_Request):
    file_id: str = Field(min_length=1)
    attributes: Attributes | None = None
    chunking_strategy: dict[str, Any] | None = None


class UpdateFileRequest(_Request):
    attributes: Attributes | None


class BatchFile(_Request):
    file_id: str = Field(min_length=1)
    attributes: Attributes | None = None
    chunking_strategy: dict[str, Any] | None = None


class CreateBatchRequest(_Request):
    """Either `file_ids` or `files`, not both (the service says 400 naming `files`)."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["file_ids"]}, {"required": ["files"]}]}
    )

    # Absent, not null: the schema says so (the service answers 400 for both missing).
    file_ids: Annotated[list[str], Field(min_length=1, max_length=2000)] | SkipJsonSchema[None] = (
        None
    )
    files: (
        Annotated[list[BatchFile], Field(min_length=1, max_length=2000)] | SkipJsonSchema[None]
    ) = None
    attributes: Attributes | None = None
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


# A search query: not blank.
_Query = Annotated[str, StringConstraints(pattern=r"\S")]


class VectorStoreSearchRequest(_Request):
    query: _Query | Annotated[list[_Query], Field(min_length=1)]
    max_num_results: integer(ge=1, le=50) = 10
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None
    # Accepted; the query is searched as given (hybrid BM25 + vectors needs no rewriting).
    rewrite_query: bool = False


# -- vector stores: answers -------------------------------------------------------------------


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
    attributes: dict[str, bool | str | float]
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
    attributes: dict[str, bool | str | float]
    content: list[SearchContent]
    # Ours: the 1-based page of a paged document (PDF) where the snippet starts, else null.
    page: int | None


class SearchPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: str | list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None
