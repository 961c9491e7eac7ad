"""The gateway's OpenAPI document (issue #25): one schema per route, from the models that
validate the requests; every error documented with the one envelope; OpenAI's request rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_fakes import Upstreams, assert_envelope, chat_body

from llmserver_common import localdocs_api, openai_responses_api, openai_retrieval_api
from llmserver_common.openai_api import EmbeddingRequest
from llmserver_common.openapi import ERROR_STATUSES
from llmserver_gateway.schemas import ChatCompletionRequest

Gateway = Callable[..., TestClient]

LOCALDOCS_OPERATIONS = {
    ("post", "/v1/localdocs/collections"),
    ("get", "/v1/localdocs/collections"),
    ("get", "/v1/localdocs/collections/{name}"),
    ("delete", "/v1/localdocs/collections/{name}"),
    ("get", "/v1/localdocs/collections/{name}/files"),
    ("post", "/v1/localdocs/collections/{name}/paths"),
    ("delete", "/v1/localdocs/collections/{name}/paths"),
    ("post", "/v1/localdocs/collections/{name}/reindex"),
    ("post", "/v1/localdocs/search"),
    ("get", "/v1/localdocs/active"),
    ("put", "/v1/localdocs/active"),
}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation = document["paths"][path][method]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]
    return resolve(document, ref)


@pytest.fixture
def document(gateway: Gateway) -> dict[str, Any]:
    return gateway().get("/openapi.json").json()


def test_every_localdocs_route_is_its_own_operation(document: dict[str, Any]) -> None:
    documented = {op for op in operations(document) if op[1].startswith("/v1/localdocs")}
    assert documented == LOCALDOCS_OPERATIONS
    assert not [path for path in document["paths"] if "{path}" in path]  # no catch-all


def test_request_schemas_are_the_validating_models(document: dict[str, Any]) -> None:
    """Not a hand-kept copy: the document holds exactly what the models generate."""
    expected = {
        ("post", "/v1/chat/completions"): ChatCompletionRequest,
        ("post", "/v1/embeddings"): EmbeddingRequest,
        ("post", "/v1/localdocs/collections"): localdocs_api.CreateCollectionRequest,
        ("post", "/v1/localdocs/search"): localdocs_api.SearchRequest,
        ("put", "/v1/localdocs/active"): localdocs_api.ActiveCollections,
    }
    for (method, path), model in expected.items():
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert body_schema(document, method, path) == generated, path


def test_every_operation_documents_its_answer_and_errors_with_the_envelope(
    document: dict[str, Any],
) -> None:
    for (method, path), operation in operations(document).items():
        responses = operation["responses"]
        assert any(status.startswith("2") for status in responses), (method, path)
        assert "422" not in responses, (method, path)  # FastAPI's; we answer 400
        for status, response in responses.items():
            if int(status) < 400 or path == "/health":
                continue
            schema = response["content"]["application/json"]["schema"]
            # Anthropic's Messages API answers its errors in Anthropic's envelope.
            envelope = (
                "AnthropicErrorResponse" if path.startswith("/v1/messages") else "ErrorResponse"
            )
            assert schema == {"$ref": f"#/components/schemas/{envelope}"}, (method, path)
            assert response["description"] == ERROR_STATUSES[int(status)]
        if "requestBody" in operation:
            assert {"400", "413"} <= set(responses), (method, path)
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "404", "413", "429", "503", "504"} <= set(chat)
    assert "Retry-After" in chat["429"]["headers"] and "Retry-After" in chat["503"]["headers"]
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    # The status rules are written once, in the document's description.
    assert all(f"**{status}**" in document["info"]["description"] for status in ERROR_STATUSES)


def test_openai_rules_are_in_the_schema(document: dict[str, Any]) -> None:
    chat = body_schema(document, "post", "/v1/chat/completions")
    roles = set()
    for option in chat["properties"]["messages"]["items"]["oneOf"]:
        message = resolve(document, option)
        role = message["properties"]["role"]["const"]
        roles.add(role)
        if role in ("system", "developer", "user", "tool"):
            assert "content" in message["required"], role
    assert roles == {"system", "developer", "user", "assistant", "tool"}
    assert chat["properties"]["model"]["anyOf"][0]["minLength"] == 1
    for name in ("presence_penalty", "frequency_penalty"):
        number = chat["properties"][name]["anyOf"][0]
        assert (number["minimum"], number["maximum"]) == (-2, 2)
    assert (
        "localdocs" in chat["properties"]
        and "Extension" in (chat["properties"]["localdocs"]["description"])
    )
    embeddings = body_schema(document, "post", "/v1/embeddings")
    assert embeddings["properties"]["input"]["anyOf"][0]["minLength"] == 1
    choice = document["components"]["schemas"]["ChatChoice"]
    assert "Extension" in choice["properties"]["references"]["description"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "0"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        (chat_body(model=""), "model"),
        (chat_body(presence_penalty=2.5), "presence_penalty"),
        (chat_body(tools=[{"type": "function"}]), "tools.0.function"),
        (chat_body(tool_choice="required"), "tool_choice"),
        (chat_body(top_logprobs=2), "top_logprobs"),
    ],
)
def test_requests_openai_refuses_are_400(
    gateway: Gateway, upstreams: Upstreams, body: dict[str, Any], param: str
) -> None:
    error = assert_envelope(gateway().post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    sent = [r for r in upstreams.a.requests + upstreams.b.requests if r[1] != "/health"]
    assert not sent  # refused before inference


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": ""}, "input"), ({"input": ["a", ""]}, "input.1"), ({"input": []}, "input")],
)
def test_empty_embedding_input_is_400(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    error = assert_envelope(gateway().post("/v1/embeddings", json=body), 400)
    assert error["param"] == param


def test_what_openai_accepts_is_accepted(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    accepted = [
        chat_body(n=None, stream=None, tools=[], logit_bias={}, max_tokens=2.0),
        chat_body(
            messages=[{"role": "assistant", "content": None}, {"role": "user", "content": ""}]
        ),
        chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
    ]
    for body in accepted:
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, (body, response.text)


def test_other_methods_are_405_with_every_method_in_allow(gateway: Gateway) -> None:
    client = gateway()
    for method, path, allow in [
        ("PATCH", "/v1/localdocs/collections", "GET, POST"),
        ("OPTIONS", "/v1/localdocs/active", "GET, PUT"),
        ("PUT", "/v1/localdocs/collections/manuals", "DELETE, GET"),
        ("GET", "/v1/chat/completions", "POST"),
    ]:
        response = client.request(method, path)
        assert_envelope(response, 405)
        assert response.headers["allow"] == allow, (method, path)


def test_localdocs_bodies_are_validated_before_forwarding(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway()
    for path, body, param in [
        ("/v1/localdocs/collections", {"name": "bad name", "paths": ["/x"]}, "name"),
        ("/v1/localdocs/collections", {"name": "ok", "paths": []}, "paths"),
        ("/v1/localdocs/search", {"query": "q", "k": 51}, "k"),
    ]:
        error = assert_envelope(client.post(path, json=body), 400)
        assert error["param"] == param, path
    assert not upstreams.localdocs.requests
    # A valid one goes through, whatever its Content-Type says.
    response = client.post(
        "/v1/localdocs/search",
        content=b'{"query": "q", "collections": ["manuals"], "k": 1}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert upstreams.localdocs.requests[-1][1] == "/v1/localdocs/search"


def test_api_key_shows_as_bearer_security(gateway: Gateway) -> None:
    client = gateway(api_key="secret")
    document = client.get("/openapi.json", headers={"Authorization": "Bearer secret"}).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/health"]["get"]


def test_docs_render_offline(gateway: Gateway) -> None:
    """/docs is Swagger UI from files the gateway serves itself (no CDN: the server is offline)."""
    client = gateway()
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+\.(?:js|css))['"]""", page.text)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


RETRIEVAL_BODIES = {
    ("post", "/v1/vector_stores"): openai_retrieval_api.CreateVectorStoreRequest,
    ("post", "/v1/vector_stores/{vector_store_id}"): openai_retrieval_api.ModifyVectorStoreRequest,
    ("post", "/v1/vector_stores/{vector_store_id}/search"): (
        openai_retrieval_api.VectorStoreSearchRequest
    ),
    ("post", "/v1/vector_stores/{vector_store_id}/files"): openai_retrieval_api.AttachFileRequest,
    ("post", "/v1/vector_stores/{vector_store_id}/files/{file_id}"): (
        openai_retrieval_api.UpdateFileRequest
    ),
    ("post", "/v1/vector_stores/{vector_store_id}/file_batches"): (
        openai_retrieval_api.CreateBatchRequest
    ),
    ("post", "/v1/responses"): openai_responses_api.ResponsesRequest,
}


def test_openai_retrieval_routes_are_documented_with_localdocs_models(
    document: dict[str, Any],
) -> None:
    """Files, Vector Stores and Responses: one operation each (no catch-all), the request
    schemas the models localdocs validates with, the upload as multipart/form-data."""
    documented = {
        op for op in operations(document) if op[1].startswith(("/v1/files", "/v1/vector_stores"))
    }
    assert len(documented) == 20, sorted(documented)
    for (method, path), model in RETRIEVAL_BODIES.items():
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert body_schema(document, method, path) == generated, path
    upload = document["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    form = resolve(document, upload["multipart/form-data"]["schema"])
    assert form["properties"]["file"]["format"] == "binary"
    assert set(form["required"]) == {"file", "purpose"}
    store = document["paths"]["/v1/vector_stores/{vector_store_id}"]["get"]
    (parameter,) = store["parameters"]
    assert parameter["schema"]["pattern"] == openai_retrieval_api.VECTOR_STORE_ID_PATTERN
    answer = store["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/VectorStore"}
    response = document["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert set(response) == {"application/json", "text/event-stream"}


def test_openai_retrieval_paths_refuse_bad_ids_and_other_methods(gateway: Gateway) -> None:
    client = gateway()
    for method, path, allow in [
        ("PUT", "/v1/files", "GET, POST"),
        ("PATCH", "/v1/vector_stores/vs_abc", "DELETE, GET, POST"),
        ("GET", "/v1/responses", "POST"),
    ]:
        response = client.request(method, path)
        assert_envelope(response, 405)
        assert response.headers["allow"] == allow, (method, path)
    response = client.get("/v1/vector_stores/not-a-store-id")
    assert_envelope(response, 400)
    assert response.json()["error"]["param"] == "vector_store_id"
