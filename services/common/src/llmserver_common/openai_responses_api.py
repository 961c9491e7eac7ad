"""The request and answer models of OpenAI's Responses API as the localdocs service serves it
(text input, instructions, sampling, the `file_search` tool; responses stored for a while),
importable without its dependencies: localdocs validates with them, the gateway documents them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from llmserver_common.openai_api import integer
from llmserver_common.openai_retrieval_api import (
    ComparisonFilter,
    CompoundFilter,
    Metadata,
    RankingOptions,
)

# The ids of the responses this server makes (`resp_` and 24 hex digits).
RESPONSE_ID_PATTERN = r"^resp_[A-Za-z0-9_-]{1,64}$"


class _Request(BaseModel):
    # Unknown fields are ignored, as everywhere in the API; types are strict.
    model_config = ConfigDict(extra="ignore", strict=True)


class InputText(_Request):
    type: Literal["input_text", "output_text"]
    text: str


class InputMessage(_Request):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]


class FunctionCallInput(_Request):
    """An earlier turn's call (a `function_call` output item sent back)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutput(_Request):
    """The result of a call, for the model's next turn."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


def _item_type(item: Any) -> str:
    # A message may leave out its type (OpenAI's "easy input message").
    if isinstance(item, dict):
        return str(item.get("type", "message"))
    return str(getattr(item, "type", "message"))


InputItem = Annotated[
    Annotated[InputMessage, Tag("message")]
    | Annotated[FunctionCallInput, Tag("function_call")]
    | Annotated[FunctionCallOutput, Tag("function_call_output")],
    Discriminator(_item_type),
]


class FunctionTool(_Request):
    """The Responses API's flat function tool, passed to the model as a chat tool."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FileSearchTool(_Request):
    type: Literal["file_search"]
    vector_store_ids: list[str] = Field(min_length=1, max_length=16)
    max_num_results: integer(ge=1, le=50) | None = None
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None


class FunctionChoice(_Request):
    """`{"type": "function", "name": ...}`: that function is called (one of `tools`)."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)


class FileSearchChoice(_Request):
    type: Literal["file_search"]


ToolChoice = Annotated[FunctionChoice | FileSearchChoice, Field(discriminator="type")]


class ResponsesRequest(_Request):
    """The part of OpenAI's Responses request served here: text input, instructions, sampling
    and the `file_search` tool (the only tool). Unless `store` is false the response is kept
    for a while (LOCALDOCS_RESPONSES_TTL_S), for `previous_response_id` and GET/DELETE."""

    model: str = Field(min_length=1)
    input: str | Annotated[list[InputItem], Field(min_length=1)] = Field(
        description="A user message, or the conversation's items (at least one): text "
        "messages, and `function_call` / `function_call_output` items."
    )
    instructions: str | None = None
    tools: list[Annotated[FileSearchTool | FunctionTool, Field(discriminator="type")]] = []
    tool_choice: Literal["auto", "none", "required"] | ToolChoice | None = None
    include: list[Literal["file_search_call.results"]] | None = None
    max_output_tokens: integer(ge=1) | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: Metadata | None = None
    stream: bool | None = None
    previous_response_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="A stored response to continue: its input and output come before this "
        "input (404 when unknown, expired or deleted).",
    )
    store: bool | None = Field(
        default=None, description="False: the response is not kept (default: kept for a while)."
    )


class FileCitation(BaseModel):
    type: Literal["file_citation"] = "file_citation"
    file_id: str
    filename: str
    index: int
    page: int | None = None


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[FileCitation]
    logprobs: list[Any] = []


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


class FileSearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, bool | str | float]
    text: str
    page: int | None = None


class FileSearchCall(BaseModel):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"]
    queries: list[str]
    results: list[FileSearchResult] | None = Field(
        description='With `include: ["file_search_call.results"]`, else null.'
    )


class FunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str = Field(description="The call's arguments, a JSON text.")
    status: Literal["in_progress", "completed", "incomplete"]


class SummaryText(BaseModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class Reasoning(BaseModel):
    """The model's reasoning (chat's `reasoning_content`), as its summary."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryText]
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class ResponseError(BaseModel):
    code: str | None = None
    message: str


class ResponseObject(BaseModel):
    """OpenAI's Response object (the JSON answer, and the `response` of the streamed events)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    incomplete_details: dict[str, str] | None
    error: ResponseError | None
    model: str
    instructions: str | None
    output: list[Reasoning | FileSearchCall | FunctionCall | OutputMessage]
    parallel_tool_calls: bool
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    store: bool
    previous_response_id: str | None = None
    usage: ResponseUsage | None


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True
