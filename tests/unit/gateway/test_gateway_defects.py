"""Defects found by the reliability suite (D1-D7), DNS-expanded replicas, the bind warning and
the /v1/models cache, against fake upstreams."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import (
    REFERENCE,
    FakeInference,
    FakeLocalDocs,
    Upstreams,
    assert_envelope,
    chat_body,
    make_settings,
)

from llmserver_gateway import replicas as replicas_module
from llmserver_gateway.app import create_app
from llmserver_gateway.settings import GatewaySettings

Gateway = Callable[..., TestClient]

CHAT = "/v1/chat/completions"
GENERATION_PATHS = [CHAT, "/v1/completions", "/v1/embeddings"]


# -- D1: deeply nested JSON -------------------------------------------------------------------


@pytest.mark.parametrize("path", GENERATION_PATHS)
def test_deeply_nested_json_is_400_and_connection_stays_usable(
    gateway: Gateway, upstreams: Upstreams, path: str
) -> None:
    client = gateway()
    depth = 100_000
    response = client.post(path, content=b"[" * depth + b"]" * depth)
    error = assert_envelope(response, 400)
    assert error["type"] == "invalid_request_error"
    assert client.post(CHAT, json=chat_body()).status_code == 200
    assert not [p for _, p, _ in upstreams.a.requests if p == path and path != CHAT]


def test_integer_past_the_digit_limit_is_400(gateway: Gateway) -> None:
    response = gateway().post(CHAT, content=b'{"max_tokens": ' + b"9" * 5000 + b"}")
    assert_envelope(response, 400)


# -- D2: bad URLs towards localdocs, and every httpx exception ----------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("char", ["%00", "%09", "%0F", "%1B", "%7F"])
def test_control_character_in_localdocs_path_is_400(
    gateway: Gateway, upstreams: Upstreams, method: str, char: str
) -> None:
    client = gateway()
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    # A path the gateway forwards as it is (no route of its own), and a collection name.
    response = client.request(method, f"/v1/localdocs/elsewhere/a{char}b", content=body)
    assert_envelope(response, 400)
    named = client.request(method, f"/v1/localdocs/collections/a{char}b", content=body)
    # GET and DELETE take a name there: refused for the name; the others for the method.
    assert_envelope(named, 400 if method in ("GET", "DELETE") else 405)
    assert not [r for r in upstreams.localdocs.requests if "/a" in r[1]]


def test_localdocs_path_is_forwarded_with_its_escapes(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway()
    # A path without a route of its own at the gateway goes to localdocs as it is.
    response = client.get("/v1/localdocs/elsewhere/a%3Fb%23c%25d?x=1")
    assert response.status_code == 404  # the fake knows no such route
    method, path, query, _ = upstreams.localdocs.requests[-1]
    # '?', '#' and '%' in the name stay part of the path; the real query stays the query.
    assert (method, path, query) == ("GET", "/v1/localdocs/elsewhere/a?b#c%d", "x=1")


def test_invalid_collection_name_is_400_at_the_gateway(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    error = assert_envelope(gateway().get("/v1/localdocs/collections/a%3Fb%23c%25d"), 400)
    assert error["param"] == "name"
    assert not [r for r in upstreams.localdocs.requests if "collections/a" in r[1]]


HTTPX_EXCEPTIONS = [
    httpx.InvalidURL("bad"),
    httpx.CookieConflict("two cookies"),
    httpx.StreamConsumed(),
    httpx.ResponseNotRead(),
    httpx.DecodingError("bad gzip"),
    httpx.UnsupportedProtocol("ftp"),
]


@pytest.mark.parametrize("exc", HTTPX_EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_no_httpx_exception_from_inference_becomes_500(
    gateway: Gateway, upstreams: Upstreams, exc: Exception
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return FakeInference("a")(request)
        raise exc

    upstreams.a = broken  # type: ignore[assignment]
    client = gateway()
    for path, body in [
        (CHAT, chat_body()),
        (CHAT, chat_body(stream=True)),
        ("/v1/completions", {"model": "Gemma 3 270M", "prompt": "Hi"}),
        ("/v1/embeddings", {"input": "Hi"}),
    ]:
        response = client.post(path, json=body)
        assert 400 <= response.status_code < 600 and response.status_code != 500, path
        assert_envelope(response, response.status_code)


@pytest.mark.parametrize("exc", HTTPX_EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_no_httpx_exception_from_localdocs_becomes_500(
    gateway: Gateway, upstreams: Upstreams, exc: Exception
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise exc

    upstreams.localdocs = broken  # type: ignore[assignment]
    client = gateway()
    response = client.get("/v1/localdocs/collections")
    assert response.status_code in (400, 503)
    assert_envelope(response, response.status_code)
    # Chat with LocalDocs still answers, without references.
    response = client.post(CHAT, json=chat_body(localdocs={"collections": ["manuals"]}))
    assert response.status_code == 200
    assert response.headers["x-localdocs-status"] == "unavailable"
    assert response.json()["choices"][0]["references"] is None


# -- D4: every 405 carries Allow ---------------------------------------------------------------


def test_upstream_405_passes_its_allow_header(gateway: Gateway, upstreams: Upstreams) -> None:
    real = upstreams.localdocs

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/localdocs/search" and request.method != "POST":
            return httpx.Response(
                405,
                json={
                    "error": {
                        "message": "Method Not Allowed",
                        "type": "x",
                        "param": None,
                        "code": None,
                    }
                },
                headers={"Allow": "POST"},
            )
        return real(request)

    upstreams.localdocs = answer  # type: ignore[assignment]
    response = gateway().put("/v1/localdocs/search", json={"query": "hi"})
    assert_envelope(response, 405)
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/models"), ("DELETE", "/v1/models"), ("POST", "/health"), ("PUT", CHAT)]
    + [("GET", path) for path in GENERATION_PATHS]
    + [("POST", "/metrics")],
)
def test_gateway_own_405_has_allow(gateway: Gateway, method: str, path: str) -> None:
    response = gateway().request(method, path)
    assert_envelope(response, 405)
    assert response.headers.get("allow"), response.headers


# -- D7: /metrics documented as text -----------------------------------------------------------


def test_metrics_is_documented_as_text_plain(gateway: Gateway) -> None:
    client = gateway()
    content = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]["200"][
        "content"
    ]
    assert list(content) == ["text/plain"]
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


# -- D5: max_tokens cap ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [10**30, 4097])
def test_max_tokens_above_cap_is_400(
    gateway: Gateway, upstreams: Upstreams, field: str, value: int
) -> None:
    client = gateway()
    error = assert_envelope(client.post(CHAT, json=chat_body(**{field: value})), 400)
    assert error["param"] == field and field in error["message"]
    prompt = {"model": "Gemma 3 270M", "prompt": "Hi", field: value}
    error = assert_envelope(client.post("/v1/completions", json=prompt), 400)
    assert error["param"] == field
    generated = [p for _, p, _ in upstreams.a.requests if p not in ("/v1/models", "/health")]
    assert generated == []


@pytest.mark.parametrize("value", [0, -1, 1.5, "5", True, None])
def test_max_tokens_must_be_a_positive_integer(gateway: Gateway, value: Any) -> None:
    response = gateway().post(CHAT, json=chat_body(max_tokens=value))
    if value is None:  # null means absent: until stop or context full
        assert response.status_code == 200
    else:
        assert assert_envelope(response, 400)["param"] == "max_tokens"


def test_max_tokens_at_cap_passes_and_cap_is_a_setting(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    assert GatewaySettings().max_tokens_cap == 4096
    assert gateway().post(CHAT, json=chat_body(max_tokens=4096)).status_code == 200
    assert upstreams.a.requests[-1][2]["max_tokens"] == 4096  # type: ignore[index]
    small = gateway(max_tokens_cap=8)
    assert assert_envelope(small.post(CHAT, json=chat_body(max_tokens=9)), 400)
    assert small.post(CHAT, json=chat_body(max_tokens=8)).status_code == 200


# -- D6: LocalDocs retrieval during chat has its own short deadline ------------------------


class SlowLocalDocs(FakeLocalDocs):
    """Searches (or the active list) take `delay` seconds; MockTransport applies no timeouts."""

    delay: float = 2.0
    slow_paths: tuple[str, ...] = ("/v1/localdocs/search",)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in self.slow_paths:
            await asyncio.sleep(self.delay)
        return self(request)


def slow_transport(upstreams: Upstreams, slow: SlowLocalDocs) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "localdocs.test":
            return await slow.handle(request)
        return {"inference-a.test": upstreams.a, "inference-b.test": upstreams.b}[request.url.host](
            request
        )

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("slow_path", ["/v1/localdocs/search", "/v1/localdocs/active"])
def test_slow_localdocs_chat_answers_without_references(
    upstreams: Upstreams, slow_path: str
) -> None:
    slow = SlowLocalDocs(active=["manuals"])
    slow.slow_paths = (slow_path,)
    settings = make_settings(localdocs_chat_timeout_s=0.2, localdocs_timeout_s=30)
    with TestClient(create_app(settings, transport=slow_transport(upstreams, slow))) as client:
        response = client.post(CHAT, json=chat_body())
    assert response.status_code == 200
    assert response.headers["x-localdocs-status"] == "unavailable"
    assert response.json()["choices"][0]["references"] is None
    sent = upstreams.a.requests[-1][2]
    assert sent is not None and sent["messages"][-1]["content"] == "Hi"  # no context injected


def test_management_routes_keep_the_normal_timeout(upstreams: Upstreams) -> None:
    slow = SlowLocalDocs()
    slow.delay = 0.5
    settings = make_settings(localdocs_chat_timeout_s=0.1, localdocs_timeout_s=30)
    with TestClient(create_app(settings, transport=slow_transport(upstreams, slow))) as client:
        body = {"query": "flux", "collections": ["manuals"], "k": 1}
        response = client.post("/v1/localdocs/search", json=body)
    assert response.status_code == 200
    assert response.json()["data"][0]["text"] == REFERENCE["text"]


def test_localdocs_503_passes_through_with_retry_after(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            json={
                "error": {
                    "message": "Weaviate is down.",
                    "type": "service_unavailable",
                    "param": None,
                    "code": "service_unavailable",
                }
            },
            headers={"Retry-After": "7"},
        )

    upstreams.localdocs = unavailable  # type: ignore[assignment]
    response = gateway().post("/v1/localdocs/search", json={"query": "q", "collections": ["m"]})
    assert_envelope(response, 503)
    assert response.headers["retry-after"] == "7"


# -- replicas behind one DNS name (docker compose --scale) --------------------------------


def scaled_gateway(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]
) -> tuple[TestClient, dict[str, FakeInference], list[tuple[str, int]]]:
    lookups: list[tuple[str, int]] = []

    async def fake_resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        if host not in answers:
            raise OSError("name does not resolve")
        return list(answers[host])

    monkeypatch.setattr(replicas_module, "resolve_all", fake_resolve)
    fakes = {ip: FakeInference(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1")}
    hosts_seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hosts_seen.append(request.headers["host"])
        if request.url.host == "localdocs.test":
            return FakeLocalDocs()(request)
        return fakes[request.url.host](request)

    settings = make_settings(
        inference_urls=["http://inference:4892", "http://127.0.0.1:4892"],
        inference_dns_refresh_s=5,
        # Name resolution asks /v1/models once, so the chats alone show the rotation.
        models_cache_ttl_s=60,
    )
    client = TestClient(create_app(settings, transport=httpx.MockTransport(handle)))
    client.__enter__()
    client.hosts_seen = hosts_seen  # type: ignore[attr-defined]
    return client, fakes, lookups


def test_every_address_of_a_host_name_is_a_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"inference": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
    client, fakes, lookups = scaled_gateway(monkeypatch, answers)
    try:
        pool = client.app.state.pool  # type: ignore[attr-defined]
        client.portal.call(pool.resolve)  # type: ignore[union-attr]
        assert ("inference", 4892) in lookups
        assert all(host != "127.0.0.1" for host, _ in lookups)  # IP literals are not looked up
        urls = sorted(r.url for r in pool.replicas)
        assert urls == [
            "http://10.0.0.1:4892",
            "http://10.0.0.2:4892",
            "http://10.0.0.3:4892",
            "http://127.0.0.1:4892",
        ]
        client.hosts_seen.clear()  # type: ignore[attr-defined]
        for _ in range(8):
            assert client.post(CHAT, json=chat_body()).status_code == 200
        served = {
            ip: len([p for _, p, _ in fake.requests if p == CHAT]) for ip, fake in fakes.items()
        }
        assert served == {"10.0.0.1": 2, "10.0.0.2": 2, "10.0.0.3": 2, "127.0.0.1": 2}
        seen = set(client.hosts_seen)  # type: ignore[attr-defined]
        assert "inference:4892" in seen and "127.0.0.1:4892" in seen
        assert not any(host.startswith("10.0.0.") for host in seen)
    finally:
        client.__exit__(None, None, None)


def test_re_resolution_keeps_known_replicas_and_survives_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"inference": ["10.0.0.1", "10.0.0.2"]}
    client, fakes, _ = scaled_gateway(monkeypatch, answers)
    try:
        pool = client.app.state.pool  # type: ignore[attr-defined]
        client.portal.call(pool.resolve)  # type: ignore[union-attr]
        first = {r.url: r for r in pool.replicas}
        first["http://10.0.0.1:4892"].state = "down"

        answers["inference"] = ["10.0.0.1", "10.0.0.3"]  # a replica gone, a new one up
        client.portal.call(pool.resolve)  # type: ignore[union-attr]
        now = {r.url: r for r in pool.replicas}
        assert set(now) == {"http://10.0.0.1:4892", "http://10.0.0.3:4892", "http://127.0.0.1:4892"}
        assert now["http://10.0.0.1:4892"] is first["http://10.0.0.1:4892"]  # state kept
        assert now["http://10.0.0.1:4892"].state == "down"

        del answers["inference"]  # DNS failure: keep what we have
        client.portal.call(pool.resolve)  # type: ignore[union-attr]
        assert {r.url for r in pool.replicas} == set(now)

        client.get("/health")  # health checks reach the addresses with the name as Host
        assert [p for _, p, _ in fakes["10.0.0.3"].requests if p == "/health"]
        assert pool.replicas[0].state == "up"
    finally:
        client.__exit__(None, None, None)


def test_unresolved_name_is_used_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = replicas_module.ReplicaPool(["http://inference:4892"], dns_refresh_s=5)

    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no DNS")

    monkeypatch.setattr(replicas_module, "resolve_all", failing)
    asyncio.run(pool.resolve())
    assert [(r.url, r.host_header) for r in pool.replicas] == [("http://inference:4892", None)]


def test_resolve_all_returns_every_address_once() -> None:
    addresses = asyncio.run(replicas_module.resolve_all("localhost", 80))
    assert addresses and len(addresses) == len(set(addresses))


# -- bind warning --------------------------------------------------------------------------


def test_public_bind_warning_and_its_acknowledgement(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llmserver_gateway.settings")
    GatewaySettings(host="0.0.0.0").warn_if_exposed()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    caplog.clear()
    GatewaySettings(host="0.0.0.0", public_bind_acknowledged=True).warn_if_exposed()
    assert caplog.records and all(r.levelno == logging.INFO for r in caplog.records)
    caplog.clear()
    GatewaySettings(host="127.0.0.1").warn_if_exposed()
    assert caplog.records == []


# -- /v1/models served from a short-lived copy ---------------------------------------------


def test_models_list_is_cached_briefly_and_forgotten_on_errors(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway(models_list_cache_ttl_s=60)

    def model_calls() -> int:
        return len([p for _, p, _ in upstreams.a.requests if p == "/v1/models"])

    first = client.get("/v1/models").json()
    assert client.get("/v1/models").json() == first
    assert model_calls() == 1
    # An inference error invalidates the copy: the next listing asks again.
    upstreams.a.overrides[CHAT] = (500, {"error": {"message": "boom", "type": "x"}}, {})
    assert client.post(CHAT, json=chat_body()).status_code == 500
    before = model_calls()
    assert client.get("/v1/models").status_code == 200
    assert model_calls() == before + 1
    # Inference gone (seen on a request): the listing is an error, not a stale copy.
    upstreams.a.down = True
    assert_envelope(client.post(CHAT, json=chat_body()), 503)
    assert_envelope(client.get("/v1/models"), 503)


def test_models_list_cache_off_asks_every_time(gateway: Gateway, upstreams: Upstreams) -> None:
    client = gateway(models_list_cache_ttl_s=0)
    client.get("/v1/models")
    client.get("/v1/models")
    assert len([p for _, p, _ in upstreams.a.requests if p == "/v1/models"]) == 2


def test_models_list_shape_unchanged_with_cache(gateway: Gateway) -> None:
    body = gateway(models_list_cache_ttl_s=60).get("/v1/models").json()
    assert body["object"] == "list" and {m["id"] for m in body["data"]} >= {"Gemma 3 270M"}
    assert json.dumps(body)  # plain JSON
