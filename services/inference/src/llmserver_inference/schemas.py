"""Request and response models. The OpenAI ones are shared with the gateway (openai_api), so
both services accept the same requests; unknown request fields are ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserver_common.openai_api import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelName,
    SamplingRequest,
    integer,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "Completion",
    "CompletionRequest",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "EmbeddingList",
    "EmbeddingRequest",
    "InferenceHealth",
    "ModelCard",
    "ModelList",
    "SamplingRequest",
    "TokenizeRequest",
    "TokenizeResponse",
]


class _Request(BaseModel):
    # OpenAI clients send new fields all the time: ignore what we do not know.
    model_config = ConfigDict(extra="ignore", strict=True)


class TokenizeRequest(_Request):
    model: ModelName
    content: str
    add_special: bool = True


class TokenizeResponse(BaseModel):
    tokens: list[int]


class DetokenizeRequest(_Request):
    model: ModelName
    tokens: list[integer(ge=0)] = Field(description="Token ids of the model's vocabulary.")


class DetokenizeResponse(BaseModel):
    content: str


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmserver"
    kind: Literal["chat", "embedding"]
    filename: str
    aliases: list[str]
    context_length: int
    loaded: bool
    # Chat models: max_tokens when a request gives none, and the most a request may ask for.
    default_max_tokens: int | None = None
    max_tokens_ceiling: int | None = None


class InferenceHealth(BaseModel):
    status: Literal["ok", "loading"]
    loading: list[str] = Field(description="Models being loaded now.")
    loaded: list[str]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
