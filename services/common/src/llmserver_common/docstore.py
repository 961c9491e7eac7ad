"""The LocalDocs document store, shared by the localdocs API and the indexer workers.

One module owns everything both sides must agree on, so they cannot drift apart:
- the Weaviate collection of chunks (schema, deterministic chunk ids, writes, deletes, search),
- the mapping from a stored chunk to the public reference (`text`, `author`, `date`, `page`,
  `title`, `file`, `path`, `collection`, `score`),
- the Redis layout of collection and per-file progress records, and the progress summary,
- the Celery task names and queue the API sends work to (it never imports the indexer),
- name and path validation (allowed roots, symlink escapes, traversal).

Weaviate and Redis clients are passed in; this module opens no connection of its own except in
`connect_weaviate`. Redis calls are left to the callers (one side is async, the other is not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections import Collection
from weaviate.exceptions import UnexpectedStatusCodeError
from weaviate.util import generate_uuid5

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Contract between the API and the workers
# ---------------------------------------------------------------------------------------------

CHUNKS_CLASS = "LocalDocsChunk"
INDEX_QUEUE = "localdocs-indexing"
TASK_SCAN_COLLECTION = "llmserver_indexer.scan_collection"
TASK_INDEX_FILE = "llmserver_indexer.index_file"

COLLECTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Redis keys. A collection is a hash (its settings and scan state); its files are one hash
# field -> JSON record each, so a worker updates one file without rewriting the others.
REDIS_PREFIX = "llmserver:localdocs"
COLLECTIONS_SET_KEY = f"{REDIS_PREFIX}:collections"
ACTIVE_KEY = f"{REDIS_PREFIX}:active"

FILE_PENDING = "pending"
FILE_INDEXED = "indexed"
FILE_FAILED = "failed"

SCAN_SCANNING = "scanning"
SCAN_DONE = "done"
SCAN_ERROR = "error"

# Collection hash field: JSON {path: {"reason": ..., "since": ...}} for each of its paths (or a
# folder under them) a scan could not look into; the files indexed there are kept meanwhile.
UNAVAILABLE_FIELD = "unavailable"

STATE_INDEXING = "indexing"
STATE_READY = "ready"
STATE_ERROR = "error"


def collection_key(name: str) -> str:
    return f"{REDIS_PREFIX}:collection:{name}"


def files_key(name: str) -> str:
    return f"{REDIS_PREFIX}:files:{name}"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


class PathNotAllowed(ValueError):
    """A path outside the allowed roots, or one that does not exist."""


def is_valid_collection_name(name: str) -> bool:
    return bool(COLLECTION_NAME_RE.fullmatch(name))


def resolve_allowed_path(raw: str | os.PathLike[str], roots: Sequence[Path]) -> Path:
    """The real path of `raw` if it exists and lies under one of `roots`, else PathNotAllowed.

    Symlinks are resolved first, so a link inside a root that leads outside it is refused, and
    `..` can only lead somewhere that is itself under a root.
    """
    text = os.fspath(raw)
    if not text or "\x00" in text:
        raise PathNotAllowed("the path is empty or contains a NUL byte")
    candidate = Path(text)
    if not candidate.is_absolute():
        raise PathNotAllowed(f"'{text}' is not an absolute path")
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotAllowed(f"'{text}' does not exist") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        raise PathNotAllowed(f"'{text}' cannot be resolved: {exc.__class__.__name__}") from None
    for root in roots:
        real_root = Path(root).resolve()
        if real == real_root or real.is_relative_to(real_root):
            return real
    raise PathNotAllowed(f"'{text}' is outside the allowed folders")


# ---------------------------------------------------------------------------------------------
# File and collection progress records (stored in Redis by the callers)
# ---------------------------------------------------------------------------------------------


@dataclass
class FileRecord:
    """Progress and metadata of one file of a collection."""

    path: str
    state: str = FILE_PENDING
    error: str | None = None
    chunks: int = 0
    title: str | None = None
    author: str | None = None
    pages: int | None = None
    mtime: float = 0.0
    size: int = 0
    content_hash: str | None = None
    # Set anew whenever the file is queued; a task carrying an older generation is stale.
    generation: str = ""
    updated_at: str = field(default_factory=utc_now_iso)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> FileRecord:
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def public(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file": os.path.basename(self.path),
            "state": self.state,
            "error": self.error,
            "chunks": self.chunks,
            "title": self.title,
            "author": self.author,
            "pages": self.pages,
            "updated_at": self.updated_at,
        }


def summarize_progress(scan_state: str, files: Iterable[FileRecord]) -> dict[str, Any]:
    """The collection's progress from its files: indexing while a scan or a file is pending."""
    total = indexed = failed = pending = chunks = 0
    for record in files:
        total += 1
        chunks += record.chunks
        if record.state == FILE_INDEXED:
            indexed += 1
        elif record.state == FILE_FAILED:
            failed += 1
        else:
            pending += 1
    if scan_state == SCAN_SCANNING or pending:
        state = STATE_INDEXING
    elif scan_state == SCAN_ERROR:
        state = STATE_ERROR
    else:
        state = STATE_READY
    return {
        "state": state,
        "files_total": total,
        "files_indexed": indexed,
        "files_failed": failed,
        "files_pending": pending,
        "chunks": chunks,
    }


def decode_unavailable(record: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The unavailable paths of a collection record (see UNAVAILABLE_FIELD)."""
    try:
        value = json.loads(record.get(UNAVAILABLE_FIELD) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A Redis hash as str -> str, whether the client decodes responses or not."""
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in raw.items()
    }


# ---------------------------------------------------------------------------------------------
# Chunks and references
# ---------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    text: str
    page: int | None  # 1-based page where the chunk starts; None for unpaged documents
    index: int


@dataclass
class DocumentInfo:
    """What the indexer learnt about one file, copied onto each of its chunks."""

    collection: str
    path: str
    content_hash: str
    title: str | None
    author: str | None
    date: str  # ISO 8601: creation date from metadata, else the file's modification time
    embedding_model: str


def chunk_uuid(collection: str, path: str, chunk_index: int, content_hash: str) -> str:
    """Deterministic id: a retried or repeated task overwrites its chunks instead of adding."""
    return str(generate_uuid5(f"{collection}\x00{path}\x00{chunk_index}\x00{content_hash}"))


def chunk_properties(doc: DocumentInfo, chunk: Chunk) -> dict[str, Any]:
    return {
        "text": chunk.text,
        "collection": doc.collection,
        "path": doc.path,
        "file": os.path.basename(doc.path),
        "title": doc.title,
        "author": doc.author,
        "date": doc.date,
        "page": chunk.page,
        "chunk_index": chunk.index,
        "content_hash": doc.content_hash,
        "embedding_model": doc.embedding_model,
    }


def to_reference(properties: Mapping[str, Any], score: float | None) -> dict[str, Any]:
    """A stored chunk as the public reference (GPT4All's fields plus file, path, collection)."""
    path = properties.get("path") or ""
    page = properties.get("page")
    return {
        "text": properties.get("text") or "",
        "author": properties.get("author") or None,
        "date": properties.get("date") or None,
        "page": int(page) if page is not None else None,
        "title": properties.get("title") or None,
        "file": properties.get("file") or (os.path.basename(path) if path else None),
        "path": path or None,
        "collection": properties.get("collection"),
        "score": float(score) if score is not None else None,
    }


def file_content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Weaviate
# ---------------------------------------------------------------------------------------------


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


def ensure_schema(client: weaviate.WeaviateClient) -> Collection:
    """The chunks collection, created on first use (idempotent, safe against a racing creator)."""
    if client.collections.exists(CHUNKS_CLASS):
        return client.collections.get(CHUNKS_CLASS)
    field_text = Tokenization.FIELD  # exact-match properties used in filters
    try:
        client.collections.create(
            CHUNKS_CLASS,
            description="LocalDocs chunks; vectors supplied by the indexer.",
            vector_config=Configure.Vectors.self_provided(),
            properties=[
                Property(name="text", data_type=DataType.TEXT),
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
        query_properties=["text", "title", "author", "file"],
        filters=Filter.by_property("collection").contains_any(list(collections)),
        return_metadata=MetadataQuery(score=True),
    )
    return [to_reference(obj.properties, obj.metadata.score) for obj in response.objects]
