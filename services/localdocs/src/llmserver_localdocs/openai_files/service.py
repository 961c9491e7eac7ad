"""Uploaded files: kept under `<openai_dir>/files/<file id>/<file name>`, a record each in Redis.

The server chooses every path: a client names a file, never where it goes. A name with a path
separator, or of a type the indexer cannot read, is refused before anything is written; an
upload is written to a temporary name and renamed once complete, so a half-written file is
never indexed or listed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from anyio import to_thread
from redis import asyncio as aioredis

from llmserver_common.errors import APIError, invalid_request
from llmserver_localdocs.openai_files.schemas import PURPOSES
from llmserver_localdocs.openai_shared import (
    REDIS_PREFIX,
    Order,
    cursor_page,
    new_id,
    not_found,
    now,
    redis_call,
    sequence_number,
)
from llmserver_localdocs.settings import LocalDocsSettings

logger = logging.getLogger(__name__)

FILES_KEY = f"{REDIS_PREFIX}:files"  # sorted set: file id -> sequence number
COPY_CHUNK = 1024 * 1024
# A file system name is at most 255 bytes; a vector store's link adds the file id to it.
MAX_NAME_BYTES = 200


def file_key(file_id: str) -> str:
    return f"{REDIS_PREFIX}:file:{file_id}"


def uploads_not_configured() -> APIError:
    return invalid_request(
        "File uploads are not configured on this server (LOCALDOCS_OPENAI_DIR).",
        code="uploads_not_configured",
    )


def too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"The file is larger than this server's limit of {limit} bytes.",
        param="file",
        code="file_too_large",
    )


class FilesService:
    def __init__(self, settings: LocalDocsSettings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        # Called with a file id before the file is deleted (the vector stores let go of it).
        self.before_delete: list[Callable[[str], Awaitable[None]]] = []

    @property
    def files_dir(self) -> Path:
        if self.settings.openai_dir is None:
            raise uploads_not_configured()
        return self.settings.openai_dir / "files"

    # -- checks ---------------------------------------------------------------------------

    def check_filename(self, filename: str | None) -> str:
        name = (filename or "").strip()
        if not name:
            raise invalid_request("The uploaded file has no name.", param="file")
        if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
            raise invalid_request(
                f"Invalid file name '{name}': a name may not contain path separators.",
                param="file",
                code="invalid_file_name",
            )
        if name.startswith(".") or len(name.encode()) > MAX_NAME_BYTES:
            raise invalid_request(
                f"Invalid file name '{name}': hidden or longer than {MAX_NAME_BYTES} bytes.",
                param="file",
                code="invalid_file_name",
            )
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension not in self.settings.files_extensions:
            raise invalid_request(
                f"Invalid file format '{extension or name}'. Supported formats: "
                + ", ".join(self.settings.files_extensions)
                + ".",
                param="file",
                code="unsupported_file",
            )
        return name

    @staticmethod
    def check_purpose(purpose: Any) -> str:
        if not isinstance(purpose, str) or not purpose:
            raise invalid_request("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in PURPOSES:
            raise invalid_request(
                f"Invalid value for 'purpose': '{purpose}'. Supported: {', '.join(PURPOSES)}.",
                param="purpose",
            )
        return purpose

    # -- records --------------------------------------------------------------------------

    async def create(self, filename: str | None, purpose: Any, data: IO[bytes]) -> dict[str, Any]:
        """Store an upload and record it; answers the File object."""
        name = self.check_filename(filename)
        purpose = self.check_purpose(purpose)
        file_id = new_id("file-")
        folder = self.files_dir / file_id
        target = folder / name
        size = await to_thread.run_sync(self._write, data, folder, target)
        record = {
            "id": file_id,
            "filename": name,
            "bytes": str(size),
            "created_at": str(now()),
            "purpose": purpose,
        }
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(file_key(file_id), mapping=record)
            pipe.zadd(FILES_KEY, {file_id: sequence_number()})
            await redis_call(pipe.execute())
        except APIError:
            await to_thread.run_sync(shutil.rmtree, folder, True)
            raise
        logger.info("file %s stored (%d bytes)", file_id, size)
        return self._view(record)

    def _write(self, data: IO[bytes], folder: Path, target: Path) -> int:
        limit = self.settings.files_max_bytes
        folder.mkdir(parents=True, exist_ok=False)
        partial = folder / ".upload"
        size = 0
        try:
            with partial.open("wb") as out:
                while block := data.read(COPY_CHUNK):
                    size += len(block)
                    if size > limit:
                        raise too_large(limit)
                    out.write(block)
            os.replace(partial, target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return size

    @staticmethod
    def _view(record: dict[str, str]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "bytes": int(record.get("bytes", 0)),
            "created_at": int(record.get("created_at", 0)),
            "filename": record.get("filename", ""),
            "purpose": record.get("purpose", "assistants"),
        }

    async def record(self, file_id: str, param: str = "file_id") -> dict[str, str]:
        raw = await redis_call(self.redis.hgetall(file_key(file_id)))
        if not raw or not raw.get("id"):
            raise not_found("file", file_id, param)
        return raw

    async def get(self, file_id: str) -> dict[str, Any]:
        return self._view(await self.record(file_id))

    def path_of(self, record: dict[str, str]) -> Path:
        """Where a recorded file lies (server-chosen: its id and its checked name)."""
        return self.files_dir / record["id"] / record["filename"]

    def id_of_path(self, path: str) -> str | None:
        """The file id of a stored upload's path, None for any other path."""
        if self.settings.openai_dir is None:
            return None
        candidate = Path(path)
        if candidate.parent.parent != self.files_dir:
            return None
        return candidate.parent.name

    async def content_path(self, file_id: str) -> tuple[Path, str]:
        record = await self.record(file_id)
        path = self.path_of(record)
        if not path.is_file():
            raise APIError(
                404,
                f"The content of file '{file_id}' is missing from the server's data folder.",
                param="file_id",
                code="file_content_missing",
            )
        return path, record["filename"]

    async def list(
        self, *, purpose: str | None, limit: int, order: Order, after: str | None
    ) -> dict[str, Any]:
        ids: list[str] = await redis_call(self.redis.zrange(FILES_KEY, 0, -1))
        pipe = self.redis.pipeline(transaction=False)
        for file_id in ids:
            pipe.hgetall(file_key(file_id))
        records = await redis_call(pipe.execute()) if ids else []
        views = [
            self._view(raw)
            for raw in records
            if raw and raw.get("id") and (purpose is None or raw.get("purpose") == purpose)
        ]
        return cursor_page(views, limit=limit, order=order, after=after, before=None)

    async def delete(self, file_id: str) -> dict[str, Any]:
        record = await self.record(file_id)
        for hook in self.before_delete:
            await hook(file_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(file_key(file_id))
        pipe.zrem(FILES_KEY, file_id)
        await redis_call(pipe.execute())
        with contextlib.suppress(OSError):
            await to_thread.run_sync(shutil.rmtree, self.files_dir / record["id"])
        logger.info("file %s deleted", file_id)
        return {"id": file_id, "deleted": True}
