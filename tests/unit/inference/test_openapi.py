"""The inference service's OpenAPI document: the shared OpenAI models, the errors it answers."""

from __future__ import annotations

from typing import Any

from llmserver_common.openai_api import ChatCompletionRequest, EmbeddingRequest
from llmserver_inference.app import create_app
from llmserver_inference.settings import InferenceSettings


def without_nulls(value: Any) -> Any:
    """FastAPI's document leaves out null values ("default": null)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_document_uses_the_shared_models_and_the_envelope() -> None:
    document: dict[str, Any] = create_app(InferenceSettings()).openapi()
    schemas = document["components"]["schemas"]
    for path, model in (
        ("/v1/chat/completions", ChatCompletionRequest),
        ("/v1/embeddings", EmbeddingRequest),
    ):
        operation = document["paths"][path]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model.__name__}"
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert schemas[model.__name__] == without_nulls(generated)
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert "422" not in operation["responses"], (method, path)
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "404", "429", "503"} <= set(chat)
    assert chat["429"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert "HTTPValidationError" not in schemas
