"""Request and response models of the LocalDocs API (paths and fields: api-contract.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    # Unknown fields are ignored, as everywhere in the API.
    model_config = ConfigDict(extra="ignore")


class CreateCollectionRequest(_Request):
    name: str
    paths: list[str] = Field(min_length=1)


class AddPathsRequest(_Request):
    paths: list[str] = Field(min_length=1)


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=10_000)
    # Absent or null: the server-wide active collections.
    collections: list[str] | None = None
    k: int | None = Field(default=None, ge=1)


class ActiveCollections(_Request):
    collections: list[str]


class UnavailablePath(BaseModel):
    """A path of the collection (or a folder under it) a scan could not look into. The files
    indexed there stay searchable; the collection resumes by itself when the path is back."""

    path: str
    reason: str | None
    since: str | None


class Collection(BaseModel):
    object: str = "localdocs.collection"
    name: str
    paths: list[str]
    embedding_model: str | None
    state: str
    files_total: int
    files_indexed: int
    files_failed: int
    files_pending: int
    chunks: int
    unavailable_paths: list[UnavailablePath] = []
    error: str | None
    created_at: str | None
    updated_at: str | None


class CollectionList(BaseModel):
    object: str = "list"
    data: list[Collection]


class FileInfo(BaseModel):
    path: str
    file: str
    state: str
    error: str | None
    chunks: int
    title: str | None
    author: str | None
    pages: int | None
    updated_at: str | None


class FileList(BaseModel):
    object: str = "list"
    collection: str
    data: list[FileInfo]


class Reference(BaseModel):
    text: str
    author: str | None
    date: str | None
    page: int | None
    title: str | None
    file: str | None
    path: str | None
    collection: str | None
    score: float | None


class SearchResponse(BaseModel):
    object: str = "list"
    data: list[Reference]


class DeletedCollection(BaseModel):
    object: str = "localdocs.collection.deleted"
    name: str
    deleted: bool = True
