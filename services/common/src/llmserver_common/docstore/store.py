"""The Weaviate collection of chunks: connection, schema, writes, deletes, hybrid search."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections import Collection
from weaviate.exceptions import UnexpectedStatusCodeError

from llmserver_common.docstore.chunks import (
    Chunk,
    DocumentInfo,
    chunk_properties,
    chunk_uuid,
    to_reference,
)

logger = logging.getLogger(__name__)

CHUNKS_CLASS = "LocalDocsChunk"
# What BM25 looks at, in hybrid search and in the benchmark's BM25 baseline.
SEARCH_PROPERTIES = ("text", "heading", "title", "author", "file")


def connect_weaviate(
    url: str,
    grpc_port: int,
    api_key: str | None,
    *,
    timeout_s: float = 30.0,
    init_timeout_s: float | None = None,
    query_timeout_s: float | None = None,
    insert_timeout_s: float | None = None,
) -> weaviate.WeaviateClient:
    """A connected v4 client for a Weaviate at `url` (REST) and `grpc_port` on the same host.

    `timeout_s` sets every timeout unless a specific one is given. These bound one request
    only: on a refused gRPC connection (UNAVAILABLE) the client's own retry (weaviate.retry,
    sleeping 1, 2, 4, 8, 16, 32 s, not configurable) still runs for searches and aggregates,
    so a caller that must answer quickly has to bound the whole call itself.
    """
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    secure = parsed.scheme == "https"
    port = parsed.port or (443 if secure else 80)
    client = weaviate.connect_to_custom(
        http_host=host,
        http_port=port,
        http_secure=secure,
        grpc_host=host,
        grpc_port=grpc_port,
        grpc_secure=secure,
        auth_credentials=Auth.api_key(api_key) if api_key else None,
        additional_config=AdditionalConfig(
            timeout=Timeout(
                init=init_timeout_s if init_timeout_s is not None else min(timeout_s, 10.0),
                query=query_timeout_s if query_timeout_s is not None else timeout_s,
                insert=insert_timeout_s if insert_timeout_s is not None else timeout_s * 4,
            )
        ),
        skip_init_checks=False,
    )
    return client


# Properties added after the first release: an existing collection gets them on first use.
_ADDED_PROPERTIES = [Property(name="heading", data_type=DataType.TEXT)]


def _add_missing_properties(chunks: Collection) -> None:
    present = {prop.name for prop in chunks.config.get().properties}
    for prop in _ADDED_PROPERTIES:
        if prop.name not in present:
            try:
                chunks.config.add_property(prop)
                logger.info("chunks collection: property %s added", prop.name)
            except UnexpectedStatusCodeError:
                logger.debug("property %s added concurrently", prop.name)


def ensure_schema(client: weaviate.WeaviateClient) -> Collection:
    """The chunks collection, created on first use (idempotent, safe against a racing creator)."""
    if client.collections.exists(CHUNKS_CLASS):
        chunks = client.collections.get(CHUNKS_CLASS)
        _add_missing_properties(chunks)
        return chunks
    field_text = Tokenization.FIELD  # exact-match properties used in filters
    try:
        client.collections.create(
            CHUNKS_CLASS,
            description="LocalDocs chunks; vectors supplied by the indexer.",
            vector_config=Configure.Vectors.self_provided(),
            properties=[
                Property(name="text", data_type=DataType.TEXT),
                *_ADDED_PROPERTIES,
                Property(name="collection", data_type=DataType.TEXT, tokenization=field_text),
                Property(name="path", data_type=DataType.TEXT, tokenization=field_text),
                Property(name="file", data_type=DataType.TEXT),
                Property(name="title", data_type=DataType.TEXT),
                Property(name="author", data_type=DataType.TEXT),
                Property(name="date", data_type=DataType.TEXT, tokenization=field_text),
                Property(name="page", data_type=DataType.INT),
                Property(name="chunk_index", data_type=DataType.INT),
                Property(name="content_hash", data_type=DataType.TEXT, tokenization=field_text),
                Property(name="embedding_model", data_type=DataType.TEXT, tokenization=field_text),
            ],
        )
    except UnexpectedStatusCodeError as exc:
        # Another worker created it between our check and our create.
        if not client.collections.exists(CHUNKS_CLASS):
            raise
        logger.debug("chunks collection created concurrently: %s", exc.status_code)
    return client.collections.get(CHUNKS_CLASS)


def _file_filter(collection: str, path: str) -> Any:
    return Filter.by_property("collection").equal(collection) & Filter.by_property("path").equal(
        path
    )


def write_chunks(
    chunks_collection: Collection,
    doc: DocumentInfo,
    chunks: Sequence[Chunk],
    vectors: Sequence[Sequence[float]],
    *,
    batch_size: int = 100,
) -> None:
    """Upsert a file's chunks (deterministic ids), then drop what an older version left behind."""
    if len(chunks) != len(vectors):
        raise ValueError("one vector per chunk")
    for start in range(0, len(chunks), batch_size):
        objects = [
            DataObject(
                properties=chunk_properties(doc, chunk),
                uuid=chunk_uuid(doc.collection, doc.path, chunk.index, doc.content_hash),
                vector=list(vector),
            )
            for chunk, vector in zip(
                chunks[start : start + batch_size],
                vectors[start : start + batch_size],
                strict=True,
            )
        ]
        result = chunks_collection.data.insert_many(objects)
        if result.has_errors:
            first = next(iter(result.errors.values()))
            raise WeaviateWriteError(f"Weaviate refused {len(result.errors)} chunks: {first}")
    stale = _file_filter(doc.collection, doc.path) & (
        Filter.by_property("content_hash").not_equal(doc.content_hash)
        | Filter.by_property("chunk_index").greater_or_equal(len(chunks))
    )
    delete_where(chunks_collection, stale)


class WeaviateWriteError(RuntimeError):
    """Weaviate answered, but refused some objects."""


def delete_where(chunks_collection: Collection, where: Any) -> int:
    """Delete every match; Weaviate deletes at most a page per call, so repeat until none."""
    removed = 0
    for _ in range(10_000):
        result = chunks_collection.data.delete_many(where=where)
        removed += result.successful
        if result.matches == 0 or result.successful == 0:
            break
    return removed


def delete_file_chunks(chunks_collection: Collection, collection: str, path: str) -> int:
    return delete_where(chunks_collection, _file_filter(collection, path))


# A renamed file with more chunks than this is indexed again rather than moved.
MOVE_MAX_CHUNKS = 5000


def move_file_chunks(
    chunks_collection: Collection, collection: str, old_path: str, new_path: str, expected: int
) -> bool:
    """Store a renamed file's chunks under its new path, with their vectors (same content, same
    vectors: nothing is embedded again), then drop them from the old path. False, with nothing
    changed, if the old path does not hold exactly `expected` chunks."""
    if not 0 < expected <= MOVE_MAX_CHUNKS:
        return False
    found = chunks_collection.query.fetch_objects(
        filters=_file_filter(collection, old_path), limit=expected + 1, include_vector=True
    ).objects
    if len(found) != expected:
        return False
    moved = []
    for obj in found:
        properties = dict(obj.properties)
        properties.update(path=new_path, file=os.path.basename(new_path))
        vector = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
        moved.append(
            DataObject(
                properties=properties,
                uuid=chunk_uuid(
                    collection,
                    new_path,
                    int(properties["chunk_index"]),
                    str(properties["content_hash"]),
                ),
                vector=list(vector) if vector is not None else None,
            )
        )
    result = chunks_collection.data.insert_many(moved)
    if result.has_errors:
        first = next(iter(result.errors.values()))
        raise WeaviateWriteError(f"Weaviate refused {len(result.errors)} chunks: {first}")
    delete_file_chunks(chunks_collection, collection, old_path)
    return True


def delete_collection_chunks(chunks_collection: Collection, collection: str) -> int:
    return delete_where(chunks_collection, Filter.by_property("collection").equal(collection))


def count_chunks(chunks_collection: Collection, collection: str, path: str | None = None) -> int:
    where = (
        _file_filter(collection, path)
        if path is not None
        else Filter.by_property("collection").equal(collection)
    )
    result = chunks_collection.aggregate.over_all(filters=where, total_count=True)
    return int(result.total_count or 0)


def hybrid_search(
    chunks_collection: Collection,
    query: str,
    vector: Sequence[float],
    collections: Sequence[str],
    *,
    k: int,
    alpha: float,
) -> list[dict[str, Any]]:
    """BM25 over text, title, author and file name fused with vector search; top k references."""
    response = chunks_collection.query.hybrid(
        query=query,
        vector=list(vector),
        alpha=alpha,
        limit=k,
        fusion_type=HybridFusion.RELATIVE_SCORE,
        query_properties=list(SEARCH_PROPERTIES),
        filters=Filter.by_property("collection").contains_any(list(collections)),
        return_metadata=MetadataQuery(score=True),
    )
    return [to_reference(obj.properties, obj.metadata.score) for obj in response.objects]
