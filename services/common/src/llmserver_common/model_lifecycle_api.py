"""Model lifecycle API (load, unload, list loaded, idle TTL): the models the inference service
answers with and the gateway validates and documents, one set for both."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# A TTL longer than this is a mistake (Ollama's keep_alive takes durations, not forever):
# "keep until the memory budget needs the room" is a TTL of null.
MAX_TTL_S = 30 * 24 * 3600


class LoadModelRequest(BaseModel):
    """The body of POST /v1/models/{model}/load; it may be left out."""

    model_config = ConfigDict(extra="forbid")

    ttl: int | None = Field(
        None,
        ge=1,
        le=MAX_TTL_S,
        description=(
            "Seconds the model may stay idle before it unloads itself (LM Studio's ttl, "
            "Ollama's keep_alive). Left out or null: the service's INFERENCE_MODEL_TTL_S, "
            "by default none (kept until the memory budget needs the room)."
        ),
    )


class LoadedModel(BaseModel):
    id: str = Field(description="The model's display name, as in /v1/models.")
    object: Literal["model"] = "model"
    filename: str
    kind: Literal["chat", "embedding"]
    size_bytes: int = Field(
        description="Memory the model holds as the memory budget counts it (its GGUF's size)."
    )
    busy: bool = Field(description="Generating or with requests waiting: never unloaded then.")
    ttl: int | None = Field(description="Idle seconds before it unloads itself; null: none.")
    expires_in: float | None = Field(
        description="Idle seconds left before it unloads itself; null without a TTL or busy."
    )


class LoadedModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[LoadedModel]


class UnloadedModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    unloaded: bool = Field(description="False: the model was not loaded (nothing to do).")
