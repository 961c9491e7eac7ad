"""Request -> sampling parameters, and settings parsing (no model needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmserver_common.errors import APIError
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.request_params import sampling_params as _sampling_params
from llmserver_inference.schemas import ChatCompletionRequest
from llmserver_inference.settings import InferenceSettings
from llmserver_inference.token_limits import TokenLimits

LIMITS = TokenLimits(default=77, ceiling=500, source="INFERENCE_MAX_TOKENS_CAP")

ENTRY = ModelEntry(
    name="m", filename="m.gguf", defaults={"temperature": 0.3, "top_k": 40, "bogus": 1}
)


def request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_catalog_defaults_fill_only_missing_fields() -> None:
    params = _sampling_params(request(), ENTRY, LIMITS, logprobs=None)
    assert params.temperature == 0.3 and params.top_k == 40
    params = _sampling_params(request(temperature=0, top_k=5), ENTRY, LIMITS, logprobs=None)
    assert params.temperature == 0.0 and params.top_k == 5


def test_max_completion_tokens_wins_and_absent_means_the_model_default() -> None:
    assert _sampling_params(request(), ENTRY, LIMITS, None).max_tokens == 77
    params = _sampling_params(request(max_tokens=9, max_completion_tokens=4), ENTRY, LIMITS, None)
    assert params.max_tokens == 4


def test_stop_string_or_list() -> None:
    assert _sampling_params(request(stop="END"), ENTRY, LIMITS, None).stop == ["END"]
    assert _sampling_params(request(stop=["a", "", "b"]), ENTRY, LIMITS, None).stop == ["a", "b"]


def test_json_formats_become_grammars() -> None:
    params = _sampling_params(request(response_format={"type": "json_object"}), ENTRY, LIMITS, None)
    assert params.grammar and "root" in params.grammar
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    params = _sampling_params(
        request(response_format={"type": "json_schema", "json_schema": {"schema": schema}}),
        ENTRY,
        LIMITS,
        None,
    )
    assert params.grammar and "root" in params.grammar
    # No schema (OpenAI allows that): any JSON, as json_object.
    bare = {"type": "json_schema", "json_schema": {"name": "x"}}
    params = _sampling_params(request(response_format=bare), ENTRY, LIMITS, None)
    assert (
        params.grammar
        == _sampling_params(
            request(response_format={"type": "json_object"}), ENTRY, LIMITS, None
        ).grammar
    )
    with pytest.raises(ValidationError):  # json_schema is required with type json_schema
        request(response_format={"type": "json_schema"})
    with pytest.raises(APIError) as info:
        bad = {"type": "json_schema", "json_schema": {"schema": {"type": "no-such-type"}}}
        _sampling_params(request(response_format=bad), ENTRY, LIMITS, None)
    assert info.value.status_code == 400 and info.value.param == "response_format"


def test_unknown_request_fields_are_ignored() -> None:
    assert request(brand_new_field=1, user="u").messages[0].content == "hi"


def test_settings_lists_and_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_PRELOAD", "a, b")
    monkeypatch.setenv("INFERENCE_LOG_LEVEL", "debug")
    settings = InferenceSettings()
    assert settings.preload == ["a", "b"]
    assert settings.log_level == "DEBUG"
    monkeypatch.setenv("INFERENCE_PRELOAD", '["x y"]')
    assert InferenceSettings().preload == ["x y"]
    monkeypatch.setenv("INFERENCE_LOG_LEVEL", "loud")
    with pytest.raises(ValueError):
        InferenceSettings()
