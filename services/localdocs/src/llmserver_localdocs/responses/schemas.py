"""The part of OpenAI's Responses request served here (text input, instructions, sampling, the
`file_search` tool) and the Response object: llmserver_common's models (the gateway documents
the same ones)."""

from __future__ import annotations

from llmserver_common.openai_responses_api import (
    FileSearchTool,
    InputMessage,
    ResponseObject,
    ResponsesRequest,
)

__all__ = ["FileSearchTool", "InputMessage", "ResponseObject", "ResponsesRequest"]
