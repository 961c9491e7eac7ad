"""The indexer's work, independent of Celery: index one file (scanning a collection is
collection_scan.py's part of the same Indexer).

Progress lives in Redis (see llmserver_common.docstore for the layout), chunks in Weaviate.
Every step is idempotent: chunk ids are deterministic and a file record carries a generation,
so a task that is retried, delivered twice or outrun by a newer scan cannot duplicate chunks or
overwrite newer progress.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import weaviate
from weaviate.collections import Collection

from llmserver_common import docstore
from llmserver_common.docstore import FileRecord
from llmserver_indexer.chunking import chunk_document, text_to_embed
from llmserver_indexer.collection_scan import CollectionScanning, SendTask
from llmserver_indexer.embed import EmbeddingClient
from llmserver_indexer.extract import FileProblem, extract
from llmserver_indexer.scanning import Surveyor
from llmserver_indexer.settings import IndexerSettings

logger = logging.getLogger(__name__)


class Indexer(CollectionScanning):
    """Long-lived clients for one worker process, opened on first use (after the fork)."""

    def __init__(self, settings: IndexerSettings, send_task: SendTask) -> None:
        self.settings = settings
        self._send_task = send_task
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._redis: redis.Redis | None = None
        self._weaviate: weaviate.WeaviateClient | None = None
        self._chunks: Collection | None = None
        self._embedder: EmbeddingClient | None = None
        self._surveyor = Surveyor(settings.allowed_roots, settings.max_files_per_collection)

    # -- clients --------------------------------------------------------------------------

    def _ensure_clients(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not share its parent's sockets.
                self._redis = None
                self._weaviate = None
                self._chunks = None
                self._embedder = None
                self._pid = os.getpid()
            if self._redis is None:
                self._redis = redis.Redis.from_url(
                    self.settings.redis_url, decode_responses=True, socket_timeout=30
                )
            if self._embedder is None:
                self._embedder = EmbeddingClient(
                    self.settings.inference_url,
                    self.settings.embedding_model,
                    self.settings.embed_timeout_s,
                )

    @property
    def redis(self) -> redis.Redis:
        self._ensure_clients()
        assert self._redis is not None
        return self._redis

    @property
    def embedder(self) -> EmbeddingClient:
        self._ensure_clients()
        assert self._embedder is not None
        return self._embedder

    @property
    def chunks(self) -> Collection:
        self._ensure_clients()
        with self._lock:
            if self._weaviate is not None and not self._weaviate.is_connected():
                self._weaviate = None
                self._chunks = None
            if self._chunks is None:
                client = docstore.connect_weaviate(
                    self.settings.weaviate_url,
                    self.settings.weaviate_grpc_port,
                    self.settings.weaviate_api_key,
                )
                self._weaviate = client
                self._chunks = docstore.ensure_schema(client)
            return self._chunks

    def close(self) -> None:
        with self._lock:
            if self._weaviate is not None:
                self._weaviate.close()
            if self._embedder is not None:
                self._embedder.close()
            if self._redis is not None:
                self._redis.close()
            self._weaviate = self._chunks = self._embedder = self._redis = None

    # -- records --------------------------------------------------------------------------

    def _collection(self, name: str, uid: str) -> dict[str, str] | None:
        record = docstore.decode_hash(self.redis.hgetall(docstore.collection_key(name)))
        if not record or record.get("uid") != uid:
            return None  # deleted, or deleted and created anew: this task is stale
        return record

    def _file_record(self, name: str, path: str) -> FileRecord | None:
        raw = self.redis.hget(docstore.files_key(name), path)
        return FileRecord.from_json(raw) if raw else None

    def _touch(self, name: str) -> None:
        self.redis.hset(docstore.collection_key(name), "updated_at", docstore.utc_now_iso())

    def _finish_file(self, name: str, path: str, generation: str, update: dict[str, Any]) -> bool:
        """Write the outcome unless a newer scan re-queued the file meanwhile."""
        key = docstore.files_key(name)

        def apply(pipe: Any) -> bool:
            raw = pipe.hget(key, path)
            record = FileRecord.from_json(raw) if raw else None
            if record is None or record.generation != generation:
                pipe.multi()
                return False
            for field_name, value in update.items():
                setattr(record, field_name, value)
            record.updated_at = docstore.utc_now_iso()
            pipe.multi()
            pipe.hset(key, path, record.to_json())
            pipe.hset(docstore.collection_key(name), "updated_at", record.updated_at)
            return True

        return bool(self.redis.transaction(apply, key, value_from_callable=True))

    # -- indexing -------------------------------------------------------------------------

    def index_file(self, name: str, uid: str, path: str, generation: str) -> str:
        """Extract, chunk, embed and store one file. Returns what happened, for the log.

        Raises FileProblem for a file that cannot be indexed (the caller records it as
        failed) and anything else for a transient failure (the caller retries).
        """
        collection = self._collection(name, uid)
        if collection is None:
            return "stale: collection gone"
        record = self._file_record(name, path)
        if record is None or record.generation != generation:
            return "stale: superseded"
        if record.state != docstore.FILE_PENDING:
            return f"already {record.state}"

        try:
            real = docstore.resolve_allowed_path(path, self.settings.allowed_roots)
            stat = real.stat()
        except (docstore.PathNotAllowed, OSError) as exc:
            raise FileProblem(str(exc)) from exc
        if stat.st_size > self.settings.max_file_bytes:
            raise FileProblem(
                f"the file is larger than the limit of {self.settings.max_file_bytes} bytes"
            )
        try:
            data = real.read_bytes()
        except OSError as exc:
            raise FileProblem(f"the file cannot be read: {exc.strerror or exc}") from exc
        content_hash = docstore.file_content_hash(data)
        chunks_collection = self.chunks

        if (
            content_hash == record.content_hash
            and record.chunks > 0
            and docstore.count_chunks(chunks_collection, name, path) == record.chunks
        ):
            # Touched but not changed: keep the chunks we have.
            self._finish_file(
                name,
                path,
                generation,
                {"state": docstore.FILE_INDEXED, "mtime": stat.st_mtime, "size": stat.st_size},
            )
            self._requeue_if_changed(name, uid, path, stat)
            return "unchanged"

        document = extract(
            data, real.name, self.settings.tika_url, timeout_s=self.settings.tika_timeout_s
        )
        chunks = chunk_document(
            document.segments, self.settings.chunk_size, self.settings.chunk_overlap
        )
        if not chunks:
            kind = f" ({document.content_type})" if document.content_type else ""
            raise FileProblem(f"no text could be extracted{kind}")

        model = collection.get("embedding_model") or self.settings.embedding_model
        self.embedder.model = model or None
        vectors, reported_model = self.embedder.embed(
            [text_to_embed(chunk, document.title) for chunk in chunks],
            batch_size=self.settings.embed_batch_size,
        )
        if not collection.get("embedding_model") and reported_model:
            # Record the model with the collection so queries embed with the same one.
            self.redis.hsetnx(docstore.collection_key(name), "embedding_model", reported_model)

        date = document.created or datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(
            timespec="seconds"
        ).replace("+00:00", "Z")
        info = docstore.DocumentInfo(
            collection=name,
            path=path,
            content_hash=content_hash,
            title=document.title,
            author=document.author,
            date=date,
            embedding_model=reported_model or model or "",
        )
        docstore.write_chunks(
            chunks_collection, info, chunks, vectors, batch_size=self.settings.write_batch_size
        )
        if self._collection(name, uid) is None:
            # Deleted while we worked: take back what we wrote.
            docstore.delete_file_chunks(chunks_collection, name, path)
            return "stale: collection deleted meanwhile"
        written = self._finish_file(
            name,
            path,
            generation,
            {
                "state": docstore.FILE_INDEXED,
                "error": None,
                "chunks": len(chunks),
                "title": document.title,
                "author": document.author,
                "pages": document.pages,
                "mtime": stat.st_mtime,
                "size": stat.st_size,
                "content_hash": content_hash,
            },
        )
        if not written:
            if self._file_record(name, path) is None:
                # Removed from the collection while we worked (deleted, or its path taken out):
                # take back what we wrote, as for a deleted collection.
                docstore.delete_file_chunks(chunks_collection, name, path)
                return "stale: removed while indexing"
            return "stale: superseded while indexing"
        self._requeue_if_changed(name, uid, path, stat)
        return f"indexed {len(chunks)} chunks"

    def _requeue_if_changed(self, name: str, uid: str, path: str, read: os.stat_result) -> None:
        """Queue the file again if it changed while we read it: the watcher's scan that saw
        the change found it pending and left it alone."""
        try:
            now = os.stat(path)
        except OSError:
            return  # gone: the watcher's scan of the deletion removes it
        if (now.st_mtime, now.st_size) == (read.st_mtime, read.st_size):
            return
        record = self._file_record(name, path)
        if record is None or record.state == docstore.FILE_PENDING:
            return
        generation = self._mark_pending(name, path, record)
        self._send_task(docstore.TASK_INDEX_FILE, [name, uid, path, generation])
        logger.info("%s changed while it was indexed: queued again", path)

    def fail_file(self, name: str, path: str, generation: str, reason: str) -> None:
        """Record a file that cannot be indexed; its old chunks (if any) are dropped."""
        try:
            stat = Path(path).stat()
            mtime, size = stat.st_mtime, stat.st_size
        except OSError:
            mtime, size = 0.0, 0
        if self._finish_file(
            name,
            path,
            generation,
            {
                "state": docstore.FILE_FAILED,
                "error": reason,
                "chunks": 0,
                "content_hash": None,
                "mtime": mtime,
                "size": size,
            },
        ):
            docstore.delete_file_chunks(self.chunks, name, path)

    def recover(self) -> int:
        """After a (re)start: rescan every collection and re-queue files left pending by a
        worker that died, so nothing waits for the broker's visibility timeout."""
        count = 0
        for name in sorted(self.redis.smembers(docstore.COLLECTIONS_SET_KEY)):
            record = docstore.decode_hash(self.redis.hgetall(docstore.collection_key(name)))
            if not record.get("uid"):
                continue
            self._send_task(
                docstore.TASK_SCAN_COLLECTION,
                [name, record["uid"], {"requeue_pending": True}],
            )
            count += 1
        return count
