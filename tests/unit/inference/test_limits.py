"""Input limits: lone surrogates, max_tokens bounds, embedding inputs past the model's limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmserver_common.errors import APIError
from llmserver_inference.catalog import ModelEntry, load_catalog_file
from llmserver_inference.request_params import require_encodable
from llmserver_inference.schemas import ChatCompletionRequest, CompletionRequest
from llmserver_inference.service import fit_embedding_input
from llmserver_inference.settings import InferenceSettings
from llmserver_inference.token_limits import TokenLimits, max_tokens_for, token_limits

CATALOG = Path(__file__).resolve().parents[3] / "models" / "catalog.yaml"


def chat(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_lone_surrogate_is_400_naming_the_field() -> None:
    require_encodable("héllo 名前 🙂", "messages")
    with pytest.raises(APIError) as info:
        require_encodable("\ud800 hi", "prompt")
    assert info.value.status_code == 400
    assert info.value.param == "prompt"
    assert info.value.type == "invalid_request_error"


def test_an_integral_number_is_an_integer_as_json_schema_says() -> None:
    assert chat(max_tokens=2.0).max_tokens == 2
    assert type(chat(max_tokens=2.0).max_tokens) is int


@pytest.mark.parametrize("value", ["4", 1.5, True, 0, -1])
def test_max_tokens_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ValidationError):
        chat(max_tokens=value)
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"prompt": "x", "max_completion_tokens": value})


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_above_the_ceiling_is_400_naming_it(field: str) -> None:
    limits = TokenLimits(default=64, ceiling=2048, source="INFERENCE_MAX_TOKENS_CAP")
    assert max_tokens_for(chat(**{field: 2048}), limits) == 2048
    assert max_tokens_for(chat(), limits) == 64  # absent: the model's default, not the context
    for value in (10**30, 2049):
        with pytest.raises(APIError) as info:
            max_tokens_for(chat(**{field: value}), limits)
        assert info.value.status_code == 400 and info.value.param == field
        assert info.value.code == "max_tokens_too_large"
        assert "2048" in info.value.message and "INFERENCE_MAX_TOKENS_CAP" in info.value.message


def test_default_and_ceiling_come_from_the_catalog_else_the_settings() -> None:
    settings = InferenceSettings(default_max_tokens=300, max_tokens_cap=1000)
    plain = ModelEntry(name="m", filename="m.gguf")
    assert token_limits(plain, 2048, settings) == TokenLimits(300, 1000, "INFERENCE_MAX_TOKENS_CAP")
    own = ModelEntry(
        name="m", filename="m.gguf", defaults={"max_tokens": 50}, max_tokens_ceiling=200
    )
    assert token_limits(own, 2048, settings) == TokenLimits(
        50, 200, "the catalog's max_tokens_ceiling"
    )
    # Never above the per-request context; the default never above the ceiling.
    assert token_limits(plain, 256, settings) == TokenLimits(256, 256, "the model's context length")


def test_max_tokens_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert InferenceSettings().max_tokens_cap == 4096
    assert InferenceSettings().default_max_tokens == 512
    monkeypatch.setenv("INFERENCE_MAX_TOKENS_CAP", "500")
    monkeypatch.setenv("INFERENCE_DEFAULT_MAX_TOKENS", "20")
    assert InferenceSettings().max_tokens_cap == 500
    assert InferenceSettings().default_max_tokens == 20


def test_embedding_input_truncated_keeping_the_closing_token() -> None:
    tokens = [101, *range(1000, 1400), 102]
    cut = fit_embedding_input(tokens, 256, truncate=True, end_token=102)
    assert len(cut) == 256 and cut[0] == 101 and cut[-1] == 102 and cut[-2] == 1253
    assert fit_embedding_input(tokens[:10], 256, truncate=True, end_token=102) == tokens[:10]
    assert fit_embedding_input(list(range(300)), 256, truncate=True, end_token=None) == list(
        range(256)
    )


def test_embedding_input_past_context_without_truncation_is_400() -> None:
    with pytest.raises(APIError) as info:
        fit_embedding_input(list(range(600)), 512, truncate=False, end_token=None)
    assert info.value.status_code == 400
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "input"
    assert "512" in info.value.message and "600" in info.value.message


def test_shipped_catalog_limits_and_stop_tokens() -> None:
    entries = {e.name: e for e in load_catalog_file(CATALOG)}
    assert entries["all-MiniLM-L6-v2"].max_input_tokens == 256
    assert entries["Nomic Embed Text v1.5"].max_input_tokens is None
    assert set(entries["Gemma 3 270M"].stop_tokens) == {"<end_of_turn>", "<start_of_turn>"}
