"""The gateway's public API against fake upstreams: shapes, names, errors, LocalDocs, security."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import INFERENCE_B, REFERENCE, Upstreams, assert_envelope, chat_body

Gateway = Callable[..., TestClient]


# -- models -------------------------------------------------------------------------------------


def test_models_lists_chat_and_embedding_with_gpt4all_fields(gateway: Gateway) -> None:
    response = gateway().get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    kinds = {entry["id"]: entry["kind"] for entry in body["data"]}
    assert kinds == {
        "Gemma 3 270M": "chat",
        "Phi-3 Mini Instruct": "chat",
        "MiniLM L6 v2": "embedding",
    }
    entry = body["data"][0]
    assert entry["object"] == "model"
    assert entry["root"] == entry["id"]
    assert entry["parent"] is None
    assert entry["permissions"][0]["object"] == "model_permission"
    assert isinstance(entry["created"], int) and entry["owned_by"]


@pytest.mark.parametrize("name", ["Gemma 3 270M", "gemma-3-270m-it-Q4_K_M.gguf", "gemma3"])
def test_model_resolves_display_name_file_name_and_alias(gateway: Gateway, name: str) -> None:
    response = gateway().get(f"/v1/models/{name}")
    assert response.status_code == 200
    assert response.json()["id"] == "Gemma 3 270M"


def test_unknown_model_is_404_naming_installed_models(gateway: Gateway) -> None:
    error = assert_envelope(gateway().get("/v1/models/nope"), 404)
    assert error["code"] == "model_not_found"
    assert "Gemma 3 270M" in error["message"] and "MiniLM L6 v2" in error["message"]


# -- chat ---------------------------------------------------------------------------------------


def test_chat_forwards_and_returns_gpt4all_shape(gateway: Gateway, upstreams: Upstreams) -> None:
    response = gateway().post("/v1/chat/completions", json=chat_body(model="gemma3"))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello!"
    assert body["choices"][0]["references"] is None
    method, path, sent = upstreams.a.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert sent is not None
    assert sent["model"] == "Gemma 3 270M"  # alias resolved to the display name
    assert "max_tokens" not in sent  # no GPT4All 16-token default injected
    assert "localdocs" not in sent


def test_chat_accepts_form_encoded_json_body(gateway: Gateway, upstreams: Upstreams) -> None:
    # What `curl -d '{...}'` sends: JSON text labelled application/x-www-form-urlencoded.
    response = gateway().post(
        "/v1/chat/completions",
        content=json.dumps(chat_body(max_tokens=5)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello!"
    assert upstreams.a.requests[-1][2]["max_tokens"] == 5  # type: ignore[index]


def test_unknown_fields_are_passed_through(gateway: Gateway, upstreams: Upstreams) -> None:
    response = gateway().post("/v1/chat/completions", json=chat_body(brand_new_option=7, top_k=3))
    assert response.status_code == 200
    sent = upstreams.a.requests[-1][2]
    assert sent is not None and sent["brand_new_option"] == 7 and sent["top_k"] == 3


def test_missing_model_uses_first_chat_model(gateway: Gateway, upstreams: Upstreams) -> None:
    body = chat_body()
    del body["model"]
    assert gateway().post("/v1/chat/completions", json=body).status_code == 200
    assert upstreams.a.requests[-1][2]["model"] == "Gemma 3 270M"  # type: ignore[index]


def test_default_chat_model_setting(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway(default_chat_model="Phi-3 Mini Instruct")
    body = chat_body()
    del body["model"]
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert upstreams.a.requests[-1][2]["model"] == "Phi-3 Mini Instruct"  # type: ignore[index]


def test_unknown_chat_model_is_404(gateway: Gateway, upstreams: Upstreams) -> None:
    response = gateway().post("/v1/chat/completions", json=chat_body(model="gpt-4"))
    error = assert_envelope(response, 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "Gemma 3 270M" in error["message"]
    assert not any(path == "/v1/chat/completions" for _, path, _ in upstreams.a.requests)


def test_unknown_model_fallback_names_model_used(gateway: Gateway) -> None:
    client = gateway(unknown_model_fallback=True)
    response = client.post("/v1/chat/completions", json=chat_body(model="gpt-4"))
    assert response.status_code == 200
    assert response.json()["model"] == "Gemma 3 270M"


@pytest.mark.parametrize(
    ("content", "message_part"),
    [
        (b'{"model": "x", "messages": [', "error parsing request JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "empty"),
    ],
)
def test_bad_json_is_400(gateway: Gateway, content: bytes, message_part: str) -> None:
    response = gateway().post("/v1/chat/completions", content=content)
    error = assert_envelope(response, 400)
    assert error["type"] == "invalid_request_error"
    assert message_part in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gemma3", "messages": "hi"}, "messages"),
        ({"model": "gemma3", "messages": []}, "messages"),
        ({"model": "gemma3"}, "messages"),
        ({"model": "gemma3", "messages": [{"content": "x"}]}, "messages.0.role"),
        (chat_body(temperature="hot"), "temperature"),
        (chat_body(max_tokens="ten"), "max_tokens"),
        (chat_body(stream="yes"), "stream"),
        (chat_body(model=5), "model"),
        (chat_body(localdocs={"collections": "manuals"}), "localdocs.collections"),
        (chat_body(localdocs={"k": 0}), "localdocs.k"),
        (chat_body(stop=5), "stop"),
        (chat_body(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    ],
)
def test_wrong_types_are_400_not_422(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    error = assert_envelope(gateway().post("/v1/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_get_on_completion_paths_is_405_only_post(gateway: Gateway) -> None:
    client = gateway()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        error = assert_envelope(client.get(path), 405)
        assert error["message"] == "Only POST requests are accepted."


def test_post_on_models_is_405_and_unknown_route_404(gateway: Gateway) -> None:
    client = gateway()
    assert_envelope(client.post("/v1/models", json={}), 405)
    assert_envelope(client.get("/v1/nothing-here"), 404)


def test_body_over_limit_is_413(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway(max_body_bytes=2048)
    big = chat_body(messages=[{"role": "user", "content": "x" * 5000}])
    assert_envelope(client.post("/v1/chat/completions", json=big), 413)
    assert not any(path == "/v1/chat/completions" for _, path, _ in upstreams.a.requests)


def test_upstream_429_passes_through_with_retry_after(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    envelope = {
        "error": {
            "message": "Queue full.",
            "type": "rate_limit_error",
            "param": None,
            "code": "queue_full",
        }
    }
    upstreams.a.overrides["/v1/chat/completions"] = (429, envelope, {"Retry-After": "2"})
    response = gateway().post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json() == envelope


def test_upstream_context_length_error_passes_through(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    envelope = {
        "error": {
            "message": "This model's maximum context length is 2048 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    upstreams.a.overrides["/v1/chat/completions"] = (400, envelope, {})
    response = gateway().post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 400
    assert response.json() == envelope


def test_upstream_error_without_envelope_is_wrapped(gateway: Gateway, upstreams: Upstreams) -> None:
    upstreams.a.overrides["/v1/completions"] = (502, {"detail": "proxy said no"}, {})
    response = gateway().post("/v1/completions", json={"model": "gemma3", "prompt": "x"})
    error = assert_envelope(response, 502)
    assert "proxy said no" not in error["message"]


def test_all_replicas_down_is_fast_503_with_retry_after(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    upstreams.a.down = True
    upstreams.b.down = True
    client = gateway(inference_urls=["http://inference-a.test", INFERENCE_B])
    started = time.monotonic()
    response = client.post("/v1/chat/completions", json=chat_body())
    assert time.monotonic() - started < 2
    error = assert_envelope(response, 503)
    assert int(response.headers["retry-after"]) <= 2
    assert "inference" in error["message"]
    assert client.get("/health").status_code == 503


def test_upstream_timeout_is_504(gateway: Gateway, upstreams: Upstreams) -> None:
    upstreams.a.failures["/v1/chat/completions"] = httpx.ReadTimeout
    error = assert_envelope(gateway().post("/v1/chat/completions", json=chat_body()), 504)
    assert error["type"] == "timeout_error"


# -- completions and embeddings ---------------------------------------------------------------


def test_completions_prompt_string_and_list(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    for prompt in ("Once upon", ["a", "b"]):
        response = client.post("/v1/completions", json={"model": "Gemma 3 270M", "prompt": prompt})
        assert response.status_code == 200
        assert response.json()["object"] == "text_completion"
        assert upstreams.a.requests[-1][2]["prompt"] == prompt  # type: ignore[index]
    assert_envelope(client.post("/v1/completions", json={"model": "gemma3"}), 400)


def test_embeddings_model_optional_and_resolved(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    response = client.post("/v1/embeddings", json={"input": "hello", "input_type": "query"})
    assert response.status_code == 200
    sent = upstreams.a.requests[-1][2]
    assert sent == {"input": "hello", "input_type": "query"}
    assert (
        client.post("/v1/embeddings", json={"input": ["a"], "model": "minilm"}).status_code == 200
    )
    assert upstreams.a.requests[-1][2]["model"] == "MiniLM L6 v2"  # type: ignore[index]
    assert_envelope(client.post("/v1/embeddings", json={"input": "x", "model": "nope"}), 404)
    assert_envelope(client.post("/v1/embeddings", json={"model": "minilm"}), 400)


# -- LocalDocs in chat ------------------------------------------------------------------------


def test_localdocs_references_and_prompt_template(gateway: Gateway, upstreams: Upstreams) -> None:
    body = chat_body(
        n=2,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": "How much power?"},
        ],
        localdocs={"collections": ["manuals"], "k": 2},
    )
    response = gateway().post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-localdocs-status"] == "ok"
    choices = response.json()["choices"]
    assert len(choices) == 2
    assert all(choice["references"] == [REFERENCE] for choice in choices)

    method, path, query, search = upstreams.localdocs.requests[-1]
    assert (method, path) == ("POST", "/v1/localdocs/search")
    assert json.loads(search) == {"query": "How much power?", "collections": ["manuals"], "k": 2}
    sent = upstreams.a.requests[-1][2]
    assert sent is not None and "localdocs" not in sent
    assert sent["messages"][1]["content"] == "First question"  # only the last user message
    assert sent["messages"][3]["content"] == (
        "### Context:\n"
        "Collection: manuals\n"
        "Path: /docs/manual.pdf\n"
        "Excerpt: The flux capacitor needs 1.21 gigawatts.\n"
        "\n"
        "How much power?"
    )


def test_localdocs_absent_uses_active_collections(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    response = client.post("/v1/chat/completions", json=chat_body())
    assert response.json()["choices"][0]["references"] is None  # none active by default
    upstreams.localdocs.active = ["manuals"]
    response = client.post("/v1/chat/completions", json=chat_body())
    assert response.json()["choices"][0]["references"] == [REFERENCE]
    search = json.loads(upstreams.localdocs.requests[-1][3])
    assert search == {"query": "Hi", "collections": ["manuals"], "k": 3}


def test_localdocs_true_means_active_collections(gateway: Gateway, upstreams: Upstreams) -> None:
    upstreams.localdocs.active = ["manuals"]
    response = gateway().post("/v1/chat/completions", json=chat_body(localdocs=True))
    assert response.json()["choices"][0]["references"] == [REFERENCE]


def test_localdocs_false_turns_retrieval_off(gateway: Gateway, upstreams: Upstreams) -> None:
    upstreams.localdocs.active = ["manuals"]
    response = gateway().post("/v1/chat/completions", json=chat_body(localdocs=False))
    assert response.json()["choices"][0]["references"] is None
    assert "x-localdocs-status" not in response.headers
    assert upstreams.localdocs.requests == []
    assert upstreams.a.requests[-1][2]["messages"][0]["content"] == "Hi"  # type: ignore[index]


def test_localdocs_unknown_collection_is_404(gateway: Gateway, upstreams: Upstreams) -> None:
    body = chat_body(localdocs={"collections": ["nope"]})
    error = assert_envelope(gateway().post("/v1/chat/completions", json=body), 404)
    assert "nope" in error["message"]
    assert not any(path == "/v1/chat/completions" for _, path, _ in upstreams.a.requests)


@pytest.mark.parametrize("failure", ["down", "error"])
def test_localdocs_failure_degrades_with_header(
    gateway: Gateway, upstreams: Upstreams, failure: str
) -> None:
    if failure == "down":
        upstreams.localdocs.down = True
    else:
        upstreams.localdocs.search_status = 500
    body = chat_body(localdocs={"collections": ["manuals"]})
    response = gateway().post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-localdocs-status"] == "unavailable"
    assert response.json()["choices"][0]["references"] is None
    assert response.json()["choices"][0]["message"]["content"] == "Hello!"


def test_localdocs_management_routes_forward_unchanged(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway()
    response = client.post(
        "/v1/localdocs/collections?dry=1",
        content=b'{"name": "manuals", "paths": ["/docs"]}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 201
    assert response.json() == {"name": "manuals", "state": "indexing"}
    assert upstreams.localdocs.requests[-1] == (
        "POST",
        "/v1/localdocs/collections",
        "dry=1",
        b'{"name": "manuals", "paths": ["/docs"]}',
    )
    assert client.get("/v1/localdocs/collections/missing").status_code == 404
    upstreams.localdocs.down = True
    response = client.get("/v1/localdocs/collections")
    assert_envelope(response, 503)
    assert "retry-after" in response.headers


def test_streamed_chat_has_references_in_first_chunk(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    body = chat_body(stream=True, localdocs={"collections": ["manuals"]})
    response = gateway().post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["references"] == [REFERENCE]
    assert all("references" not in c["choices"][0] for c in chunks[1:])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Hello"


def test_streamed_completion_passes_through_unchanged(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    raw = b'data: {"choices": [{"text": "a", "index": 0}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    upstreams.a.raw_streams["/v1/completions"] = raw
    client = gateway()
    # stream must be a real boolean: 1 is refused before anything is sent upstream
    response = client.post("/v1/completions", json={"model": "gemma3", "prompt": "x", "stream": 1})
    assert_envelope(response, 400)
    response = client.post(
        "/v1/completions", json={"model": "gemma3", "prompt": "x", "stream": True}
    )
    assert response.status_code == 200
    assert response.content == raw


def test_streamed_chat_with_crlf_events_gets_references(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    # sse-starlette separates events with CRLF; the first chunk must still be found.
    first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    raw = b": ping\r\n\r\ndata: " + json.dumps(first).encode() + b"\r\n\r\ndata: [DONE]\r\n\r\n"
    upstreams.a.raw_streams["/v1/chat/completions"] = raw
    response = gateway().post("/v1/chat/completions", json=chat_body(stream=True))
    assert response.status_code == 200
    events = [e for e in response.text.split("\r\n\r\n") if e]
    assert events[0] == ": ping"
    chunk = json.loads(events[1].removeprefix("data: "))
    assert chunk["choices"][0]["references"] is None
    assert chunk["choices"][0]["delta"] == {"role": "assistant"}
    assert events[2] == "data: [DONE]"


# -- replicas -----------------------------------------------------------------------------------


def test_failover_marks_replica_down_and_recovers(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway(inference_urls=["http://inference-a.test", INFERENCE_B])
    upstreams.a.down = True
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=chat_body()).status_code == 200
    pool = client.app.state.pool  # type: ignore[attr-defined]
    assert [r.state for r in pool.replicas] == ["down", "up"]
    a_calls = [p for _, p, _ in upstreams.a.requests if p == "/v1/chat/completions"]
    b_calls = [p for _, p, _ in upstreams.b.requests if p == "/v1/chat/completions"]
    assert a_calls == [] and len(b_calls) == 3

    upstreams.a.down = False
    health = client.get("/health")  # runs a health round, as the background loop does
    assert health.status_code == 200
    assert [r.state for r in pool.replicas] == ["up", "up"]


def test_least_busy_replica_is_chosen(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway(inference_urls=["http://inference-a.test", INFERENCE_B])
    pool = client.app.state.pool  # type: ignore[attr-defined]
    pool.replicas[0].in_flight = 3  # replica a is busy with three streams
    assert client.post("/v1/chat/completions", json=chat_body()).status_code == 200
    assert any(p == "/v1/chat/completions" for _, p, _ in upstreams.b.requests)
    assert not any(p == "/v1/chat/completions" for _, p, _ in upstreams.a.requests)
    assert pool.replicas[1].in_flight == 0  # released after the answer


def test_loading_replica_is_used_only_when_none_serves(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    upstreams.a.health_status = 503
    client = gateway(inference_urls=["http://inference-a.test", INFERENCE_B])
    client.get("/health")
    pool = client.app.state.pool  # type: ignore[attr-defined]
    assert [r.state for r in pool.replicas] == ["loading", "up"]
    assert [r.name for r in pool.candidates()] == ["inference-1", "inference-0"]


# -- health, security, CORS, metrics ---------------------------------------------------------


def test_health_reports_each_upstream(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["inference"][0]["state"] == "up" and body["localdocs"]["state"] == "up"
    upstreams.localdocs.down = True
    response = client.get("/health")
    assert response.status_code == 200  # localdocs down is degraded, not fatal
    assert response.json()["status"] == "degraded"
    assert response.json()["localdocs"]["state"] == "down"
    upstreams.a.down = True
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_api_key_guards_every_route_but_health(gateway: Gateway) -> None:
    client = gateway(api_key="s3cret")
    assert_envelope(client.get("/v1/models"), 401)
    assert_envelope(client.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
    assert_envelope(client.post("/v1/chat/completions", json=chat_body()), 401)
    assert_envelope(client.get("/metrics"), 401)
    ok = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert client.get("/health").status_code == 200


def test_api_key_off_by_default(gateway: Gateway) -> None:
    assert gateway().get("/v1/models").status_code == 200


def test_cors_preflight_and_headers(gateway: Gateway) -> None:
    client = gateway(api_key="s3cret")  # a preflight carries no key and must still pass
    response = client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    simple = client.get("/health", headers={"Origin": "http://localhost:3000"})
    assert simple.headers["access-control-allow-origin"] == "*"


def test_cors_origins_setting_restricts(gateway: Gateway) -> None:
    client = gateway(cors_origins="http://good.example")
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    assert client.options("/v1/models", headers=headers).status_code == 400
    headers["Origin"] = "http://good.example"
    response = client.options("/v1/models", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://good.example"


def test_metrics_text(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway()
    client.post("/v1/chat/completions", json=chat_body())
    client.post("/v1/chat/completions", json=chat_body(model="nope"))
    upstreams.a.down = True
    client.post("/v1/chat/completions", json=chat_body())
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'gateway_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0'
        in text
    )
    assert (
        'gateway_requests_total{method="POST",route="/v1/chat/completions",status="404"} 1.0'
        in text
    )
    assert 'gateway_request_duration_seconds_bucket{le="+Inf",route="/v1/chat/completions"}' in text
    assert 'gateway_tokens_generated_total{model="Gemma 3 270M"} 2.0' in text
    assert 'gateway_upstream_errors_total{kind="connect",upstream="inference"} 1.0' in text
    assert "gateway_requests_in_flight" in text
    assert "gateway_inference_in_flight" in text
    # Every attempt is counted by replica, the one refused while the upstream was down too.
    sent = dict(re.findall(r'gateway_inference_requests_total\{replica="([^"]+)"\} (\d+)\.0', text))
    assert int(sent.get("inference-0", 0)) >= 3, sent


def test_settings_parse_comma_separated_lists() -> None:
    from llmserver_gateway.settings import GatewaySettings

    settings = GatewaySettings(
        inference_urls="http://a:1/, http://b:2", cors_origins='["http://x"]', api_key=""
    )
    assert settings.inference_urls == ["http://a:1", "http://b:2"]
    assert settings.cors_origins == ["http://x"]
    assert settings.api_key is None
    with pytest.raises(ValueError):
        GatewaySettings(localdocs_context_template="no message placeholder {snippets}")


def test_openapi_docs_describe_request_bodies(gateway: Gateway) -> None:
    client = gateway()
    assert client.get("/docs").status_code == 200
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"messages", "model", "localdocs", "stream"} <= set(schema["properties"])
