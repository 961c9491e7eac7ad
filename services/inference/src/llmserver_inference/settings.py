"""Settings of the inference service (env prefix INFERENCE_), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmserver_common.settings import check_log_level, split_list

# <repo>/models when running from the source tree (services/inference/src/llmserver_inference).
_REPO_MODELS_DIR = Path(__file__).resolve().parents[4] / "models"


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(4892, ge=1, le=65535)
    log_level: str = "INFO"

    models_dir: Path = _REPO_MODELS_DIR
    default_chat_model: str = "Gemma 3 270M"
    default_embedding_model: str = "all-MiniLM-L6-v2"
    # Models loaded at start-up (/health answers 503 until they are); absent files are skipped.
    preload: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Also load the default chat and embedding models at start-up.
    preload_defaults: bool = True

    # Service-wide defaults; a catalog entry may override them per model.
    threads: int = Field(2, ge=1)
    n_gpu_layers: int = Field(0, ge=-1)
    context_length: int = Field(2048, ge=64)  # per request (per slot)
    batch_size: int = Field(512, ge=8)

    # max_tokens when a request gives none, and the largest max_tokens / max_completion_tokens
    # accepted (larger: a 400 naming this ceiling). A model's catalog entry may set its own
    # (`defaults.max_tokens`, `max_tokens_ceiling`); neither is ever above the model's
    # per-request context. A request without max_tokens so never holds a slot for the whole
    # context by accident.
    default_max_tokens: int = Field(512, ge=1)
    max_tokens_cap: int = Field(4096, ge=1)

    # Continuous batching: sequences decoded together per chat model.
    slots: int = Field(8, ge=1, le=64)
    # One KV buffer shared by the slots (true) or one slice per slot (false).
    kv_unified: bool = False
    # Prompt prefix cache (llama-server's cache_prompt): a slot keeps its sequence's KV cache
    # after a request, and a later prompt sharing a prefix with it evaluates only the rest.
    # On, models with sliding-window layers (Gemma 3) keep the full-size cache of those layers.
    prompt_cache: bool = True
    # Requests waiting for a slot, per model; past it 429.
    max_queue: int = Field(64, ge=0)
    retry_after_s: int = Field(1, ge=1)

    # Embedding contexts: sequences and tokens per llama_decode call.
    embedding_batch_size: int = Field(2048, ge=64)
    embedding_max_sequences: int = Field(64, ge=1, le=256)

    # Loaded models are kept within this budget (approximated by file size); LRU unloaded first.
    memory_budget_bytes: int = Field(8 * 1024**3, ge=0)
    # Idle seconds before a loaded model unloads itself (Ollama's keep_alive, LM Studio's TTL);
    # None: kept until the budget needs the room. A load through the API may set its own.
    model_ttl_s: int | None = Field(None, ge=1)

    @field_validator("preload", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return split_list(value)

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        return check_log_level(value)
