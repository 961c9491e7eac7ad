"""Request and response models of the LocalDocs API (paths and fields: api-contract.md).

They live in llmserver_common.localdocs_api, so the gateway validates and documents the same
models it forwards here; this module names them for the localdocs service.
"""

from __future__ import annotations

from llmserver_common.localdocs_api import (
    ActiveCollections,
    AddPathsRequest,
    Collection,
    CollectionList,
    CreateCollectionRequest,
    DeletedCollection,
    FileInfo,
    FileList,
    Reference,
    SearchRequest,
    SearchResponse,
    UnavailablePath,
)

__all__ = [
    "ActiveCollections",
    "AddPathsRequest",
    "Collection",
    "CollectionList",
    "CreateCollectionRequest",
    "DeletedCollection",
    "FileInfo",
    "FileList",
    "Reference",
    "SearchRequest",
    "SearchResponse",
    "UnavailablePath",
]
