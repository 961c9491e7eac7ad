"""The part of OpenAI's Responses request served here (text input, instructions, sampling, the
`file_search` and `function` tools, call items) and the Response object: llmserver_common's
models (the gateway documents the same ones)."""

from __future__ import annotations

from llmserver_common.openai_responses_api import (
    DeletedResponse,
    FileSearchTool,
    FunctionCallInput,
    FunctionCallOutput,
    FunctionChoice,
    FunctionTool,
    InputMessage,
    InputText,
    ResponseObject,
    ResponsesRequest,
)

__all__ = [
    "DeletedResponse",
    "FileSearchTool",
    "FunctionChoice",
    "FunctionCallInput",
    "FunctionCallOutput",
    "FunctionTool",
    "InputMessage",
    "InputText",
    "ResponseObject",
    "ResponsesRequest",
]
