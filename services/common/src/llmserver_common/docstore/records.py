"""The Redis side of LocalDocs: task names and queue, keys, file records, progress.

The API and the workers both read and write these records (one side async, the other not), so
the layout is defined once, here; the Redis calls themselves stay with the callers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

INDEX_QUEUE = "localdocs-indexing"
TASK_SCAN_COLLECTION = "llmserver_indexer.scan_collection"
TASK_INDEX_FILE = "llmserver_indexer.index_file"

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
