"""OpenAI's File objects, as the official clients read them: llmserver_common's models (the
gateway documents the same ones)."""

from __future__ import annotations

from llmserver_common.openai_retrieval_api import (
    PURPOSES,
    DeletedFile,
    FileObject,
    FileObjectList,
    FileUpload,
)

__all__ = ["PURPOSES", "DeletedFile", "FileObject", "FileObjectList", "FileUpload"]
