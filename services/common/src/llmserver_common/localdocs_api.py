"""The LocalDocs API's request and response models, importable without localdocs' dependencies.

The gateway validates and documents its /v1/localdocs routes with these, and the localdocs
service serves them (llmserver_localdocs.schemas names them): one set of models. The rules the
localdocs service also checks in code are written into the schema: collection names, at most 50
snippets per search.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from llmserver_common.openai_api import integer

# docstore.COLLECTION_NAME_RE, as a JSON Schema pattern.
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

CollectionName = Annotated[
    str,
    Field(
        pattern=COLLECTION_NAME_PATTERN,
        description="1 to 64 letters, digits, '-' or '_'.",
    ),
]

# A path the collection indexes: a folder or file under the server's allowed roots.
DocumentPath = Annotated[
    str,
    Field(
        min_length=1,
        description="An absolute path of a folder or file under the server's allowed roots "
        "(else 400); it must exist.",
    ),
]


class _Request(BaseModel):
    # Unknown fields are ignored, as everywhere in the API; types are strict.
    model_config = ConfigDict(extra="ignore", strict=True)


class CreateCollectionRequest(_Request):
    name: CollectionName
    paths: list[DocumentPath] = Field(min_length=1)


class AddPathsRequest(_Request):
    paths: list[DocumentPath] = Field(min_length=1)


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=10_000)
    collections: list[CollectionName] | None = Field(
        default=None, description="Absent or null: the server-wide active collections."
    )
    k: integer(ge=1, le=50) | None = Field(default=None, description="Snippets to return.")


class ActiveCollections(_Request):
    collections: list[CollectionName]


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
    state: str = Field(description="indexing, ready or error.")
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
    state: str = Field(description="pending, indexed or failed.")
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
