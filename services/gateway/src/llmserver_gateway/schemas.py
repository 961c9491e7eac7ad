"""Request and response models of the public API.

Requests validate only what the gateway itself needs (model, messages, the types of known fields);
everything else is passed through to inference, which validates the rest. Unknown fields are
allowed, never rejected: OpenAI clients send new fields all the time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: str = Field(min_length=1)
    # A string, or OpenAI's list of content parts; null is allowed for assistant tool calls.
    content: str | list[dict[str, Any]] | None = None


class LocalDocsOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    collections: list[str] | None = None
    k: StrictInt | None = Field(default=None, ge=1, le=100)


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class _SamplingFields(_Open):
    model: str | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, ge=0, le=1, strict=True)
    top_k: StrictInt | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1, strict=True)
    n: StrictInt | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: StrictInt | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, strict=True)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, strict=True)
    repeat_penalty: float | None = Field(default=None, strict=True)
    user: str | None = None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    response_format: dict[str, Any] | None = None
    # Absent (or true): the server-wide active collections; false: off; an object: these.
    localdocs: LocalDocsOptions | StrictBool | None = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: StrictBool | None = None


class EmbeddingRequest(_Open):
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    input_type: str | None = None


class Reference(_Open):
    """A LocalDocs snippet as returned in choices[i].references (GPT4All's fields and ours)."""

    text: str
    author: str | None = None
    date: str | None = None
    page: int | None = None
    title: str | None = None
    file: str | None = None
    path: str | None = None
    collection: str | None = None
    score: float | None = None


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
