"""Request and response models of the public API.

Requests are validated with the OpenAI models inference validates with too (openai_api), plus
our extensions (`localdocs` in, `references` out). Unknown fields are ignored, never rejected:
OpenAI clients send new fields all the time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserver_common import openai_api
from llmserver_common.localdocs_api import Reference
from llmserver_common.openai_api import (
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    integer,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "Completion",
    "CompletionRequest",
    "EmbeddingList",
    "EmbeddingRequest",
    "HealthResponse",
    "LocalDocsOptions",
    "ModelEntry",
    "ModelList",
    "Reference",
    "UpstreamHealth",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class LocalDocsOptions(BaseModel):
    """Extension: which LocalDocs collections a chat request retrieves from."""

    model_config = ConfigDict(extra="ignore", strict=True)

    collections: list[str] | None = Field(
        default=None, description="Absent or null: the server-wide active collections."
    )
    k: integer(ge=1, le=50) | None = Field(default=None, description="Snippets to retrieve.")


class ChatCompletionRequest(openai_api.ChatCompletionRequest):
    # Absent (or true): the server-wide active collections; false: off; an object: these.
    localdocs: LocalDocsOptions | bool | None = Field(
        default=None,
        description="Extension: LocalDocs retrieval for this request. Absent, null or true: "
        "the server-wide active collections (GET /v1/localdocs/active); false: none; an object: "
        "these collections. The snippets found are put into the last user message and "
        "returned in choices[i].references.",
    )


_REFERENCES = Field(
    default=None,
    description="Extension: the LocalDocs snippets put into the prompt; null when none.",
)


class ChatChoice(openai_api.ChatChoice):
    references: list[Reference] | None = _REFERENCES


class ChatCompletion(openai_api.ChatCompletion):
    choices: list[ChatChoice]  # type: ignore[assignment]


class ModelPermission(BaseModel):
    """GPT4All's placeholder permission entry, so its clients parse our model list."""

    id: str = "placeholder"
    object: str = "model_permission"
    created: int = 0
    allow_create_engine: bool = False
    allow_sampling: bool = False
    allow_logprobs: bool = False
    allow_search_indices: bool = False
    allow_view: bool = True
    allow_fine_tuning: bool = False
    organization: str = "*"
    group: str | None = None
    is_blocking: bool = False


class ModelEntry(_Open):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "humanity"
    kind: str = "chat"
    context_length: int | None = None
    default_max_tokens: int | None = Field(
        default=None, description="Chat models: max_tokens when a request gives none."
    )
    max_tokens_ceiling: int | None = Field(
        default=None, description="Chat models: the most max_tokens a request may ask for."
    )
    root: str | None = None
    parent: str | None = None
    permissions: list[ModelPermission] = Field(default_factory=lambda: [ModelPermission()])


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


class UpstreamHealth(BaseModel):
    name: str
    state: Literal["up", "loading", "down"]
    in_flight: int | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    inference: list[UpstreamHealth]
    localdocs: UpstreamHealth
