"""The part of OpenAI's Responses request served here (text input, instructions, sampling, the
`file_search` tool) and the Response object: llmserver_common's models (the gateway documents
the same ones)."""

from __future__ import annotations

from llmserver_common.openai_responses_api import (
    DeletedResponse,
    FileSearchTool,
    InputMessage,
    ResponseObject,
    ResponsesRequest,
)

__all__ = [
    "DeletedResponse",
    "FileSearchTool",
    "InputMessage",
    "ResponseObject",
    "ResponsesRequest",
]
