"""Chunks and references: what is stored per chunk, its deterministic id, and the public
reference (`text`, `author`, `date`, `page`, `title`, `file`, `path`, `collection`, `score`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weaviate.util import generate_uuid5


@dataclass
class Chunk:
    text: str
    page: int | None  # 1-based page where the chunk starts; None for unpaged documents
    index: int
    heading: str | None = None  # the section it belongs to, where the document has headings


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
        "heading": chunk.heading,
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
