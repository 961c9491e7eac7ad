"""The part of OpenAI's Responses request served here: text input, instructions, sampling, and
the `file_search` tool. Anything else a client may send that cannot be honoured is refused by
the service with a 400 naming it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserver_localdocs.vector_stores.schemas import (
    ComparisonFilter,
    CompoundFilter,
    RankingOptions,
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FileSearchTool(_Request):
    type: Literal["file_search"]
    vector_store_ids: list[str] = Field(min_length=1, max_length=16)
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None


class OtherTool(_Request):
    """Any other tool type, refused by the service with its index."""

    type: str


class ResponsesRequest(_Request):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FileSearchTool | OtherTool] = []
    tool_choice: str | dict[str, Any] | None = None
    include: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, str] | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    store: bool | None = None
