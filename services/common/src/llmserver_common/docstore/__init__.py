"""The LocalDocs document store, shared by the localdocs API and the indexer workers.

One package owns everything both sides must agree on, so they cannot drift apart:
- `records`: the Celery task names and queue the API sends work to (it never imports the
  indexer), the Redis layout of collection and per-file progress records, the progress summary;
- `paths`: name and path validation (allowed roots, symlink escapes, traversal);
- `chunks`: what is stored per chunk, its deterministic id, and the mapping from a stored chunk
  to the public reference (`text`, `author`, `date`, `page`, `title`, `file`, `path`,
  `collection`, `score`);
- `store`: the Weaviate collection of chunks (schema, writes, deletes, moves, search).

Callers use `from llmserver_common import docstore` and `docstore.<name>`. Weaviate and Redis
clients are passed in; nothing here opens a connection except `connect_weaviate`.
"""

from llmserver_common.docstore.chunks import (
    Chunk,
    DocumentInfo,
    chunk_properties,
    chunk_uuid,
    file_content_hash,
    to_reference,
)
from llmserver_common.docstore.paths import (
    COLLECTION_NAME_RE,
    PathNotAllowed,
    is_valid_collection_name,
    resolve_allowed_path,
)
from llmserver_common.docstore.records import (
    ACTIVE_KEY,
    COLLECTIONS_SET_KEY,
    FILE_FAILED,
    FILE_INDEXED,
    FILE_PENDING,
    INDEX_QUEUE,
    REDIS_PREFIX,
    SCAN_DONE,
    SCAN_ERROR,
    SCAN_SCANNING,
    STATE_ERROR,
    STATE_INDEXING,
    STATE_READY,
    TASK_INDEX_FILE,
    TASK_SCAN_COLLECTION,
    UNAVAILABLE_FIELD,
    FileRecord,
    collection_key,
    decode_hash,
    decode_unavailable,
    files_key,
    summarize_progress,
    utc_now_iso,
)
from llmserver_common.docstore.store import (
    CHUNKS_CLASS,
    MOVE_MAX_CHUNKS,
    SEARCH_PROPERTIES,
    WeaviateWriteError,
    connect_weaviate,
    count_chunks,
    delete_collection_chunks,
    delete_file_chunks,
    delete_where,
    ensure_schema,
    hybrid_search,
    move_file_chunks,
    write_chunks,
)

__all__ = [
    "ACTIVE_KEY",
    "CHUNKS_CLASS",
    "SEARCH_PROPERTIES",
    "COLLECTIONS_SET_KEY",
    "COLLECTION_NAME_RE",
    "Chunk",
    "DocumentInfo",
    "FILE_FAILED",
    "FILE_INDEXED",
    "FILE_PENDING",
    "FileRecord",
    "INDEX_QUEUE",
    "PathNotAllowed",
    "REDIS_PREFIX",
    "SCAN_DONE",
    "SCAN_ERROR",
    "SCAN_SCANNING",
    "STATE_ERROR",
    "STATE_INDEXING",
    "STATE_READY",
    "TASK_INDEX_FILE",
    "TASK_SCAN_COLLECTION",
    "UNAVAILABLE_FIELD",
    "WeaviateWriteError",
    "chunk_properties",
    "chunk_uuid",
    "collection_key",
    "connect_weaviate",
    "count_chunks",
    "decode_hash",
    "decode_unavailable",
    "delete_collection_chunks",
    "delete_file_chunks",
    "move_file_chunks",
    "MOVE_MAX_CHUNKS",
    "delete_where",
    "ensure_schema",
    "file_content_hash",
    "files_key",
    "hybrid_search",
    "is_valid_collection_name",
    "resolve_allowed_path",
    "summarize_progress",
    "to_reference",
    "utc_now_iso",
    "write_chunks",
]
