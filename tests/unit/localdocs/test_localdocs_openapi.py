"""The localdocs service's own OpenAPI document (issue #25 item 5): every route it serves, its
request and answer models from llmserver_common (the ones the gateway documents), every error
status in the one envelope, path parameters with their patterns, 405 with Allow."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserver_common import localdocs_api, openai_responses_api, openai_retrieval_api
from llmserver_common.openapi import ERROR_STATUSES
from llmserver_localdocs.app import create_app
from llmserver_localdocs.settings import LocalDocsSettings

PATTERNS = {
    "name": localdocs_api.COLLECTION_NAME_PATTERN,
    "vector_store_id": openai_retrieval_api.VECTOR_STORE_ID_PATTERN,
    "file_id": openai_retrieval_api.FILE_ID_PATTERN,
    "batch_id": openai_retrieval_api.BATCH_ID_PATTERN,
    "response_id": openai_responses_api.RESPONSE_ID_PATTERN,
}


@pytest.fixture
def client() -> TestClient:
    # No lifespan: the document and the 405s need no Redis or Weaviate.
    return TestClient(create_app(LocalDocsSettings()))


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def test_every_route_is_documented_with_its_models_and_errors(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    count = 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            count += 1
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            assert any(status.startswith("2") for status in responses), (method, path)
            if path != "/health":
                assert "503" in responses, (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and path != "/health":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
                    assert response["description"] == ERROR_STATUSES[int(status)]
            if "requestBody" in operation:
                assert "400" in responses, (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"]["pattern"] == PATTERNS[parameter["name"]], path
    assert count == 35
    # The shared models, not copies: the hand-documented ones exactly as the common model
    # generates them, those FastAPI documents with the same fields and rules.
    for model in (openai_responses_api.ResponseObject, openai_retrieval_api.FileUpload):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert schemas[model.__name__] == generated, model.__name__
    for model in (
        openai_retrieval_api.CreateVectorStoreRequest,
        openai_retrieval_api.VectorStoreSearchRequest,
        openai_responses_api.ResponsesRequest,
        openai_retrieval_api.CreateBatchRequest,
        localdocs_api.CreateCollectionRequest,
    ):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        assert set(schemas[model.__name__]["properties"]) == set(generated["properties"])
        assert schemas[model.__name__].get("oneOf") == generated.get("oneOf")
    assert (
        schemas["VectorStoreSearchRequest"]["properties"]["query"]
        == (
            openai_retrieval_api.VectorStoreSearchRequest.model_json_schema()["properties"]["query"]
        )
    )
    upload = document["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    removal = document["paths"]["/v1/localdocs/collections/{name}/paths"]["delete"]
    assert {"404", "409"} <= set(removal["responses"])


def test_other_methods_are_405_with_every_method_in_allow(client: TestClient) -> None:
    for method, path, allow in [
        ("PUT", "/v1/files", "GET, POST"),
        ("POST", "/v1/files/file-abc", "DELETE, GET"),
        ("PATCH", "/v1/vector_stores/vs_abc", "DELETE, GET, POST"),
        ("GET", "/v1/vector_stores/vs_abc/search", "POST"),
        ("DELETE", "/v1/vector_stores/vs_abc/file_batches/vsfb_abc", "GET"),
        ("GET", "/v1/responses", "POST"),
        ("PATCH", "/v1/localdocs/collections/manuals", "DELETE, GET"),
        ("POST", "/v1/localdocs/active", "GET, PUT"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert response.headers["allow"] == allow, (method, path)
