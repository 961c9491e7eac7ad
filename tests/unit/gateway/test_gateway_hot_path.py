"""The chat hot path: no per-request lookups once caches are warm, and the generation routes keep
the middleware every route has (API key, CORS, metrics) and the error envelope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from gateway_fakes import REFERENCE, Upstreams, assert_envelope, chat_body, make_settings

from llmserver_gateway.app import create_app
from llmserver_gateway.service import GatewayService

Gateway = Callable[..., TestClient]

CHAT = "/v1/chat/completions"


class Clock:
    """Stands in for time.monotonic in the service: the test moves time on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_clock(client: TestClient) -> Clock:
    clock = Clock()
    service: GatewayService = client.app.state.service  # type: ignore[attr-defined]
    service.clock = clock
    return clock


def active_lookups(upstreams: Upstreams) -> int:
    return len([p for m, p, _, _ in upstreams.localdocs.requests if p == "/v1/localdocs/active"])


def model_lookups(upstreams: Upstreams) -> int:
    return len([p for _, p, _ in upstreams.a.requests if p == "/v1/models"])


def references_until(client: TestClient, expected: object, tries: int = 50) -> object:
    """References of chats sent until they equal `expected` (a background refresh landing)."""
    seen: object = None
    for _ in range(tries):
        seen = client.post(CHAT, json=chat_body()).json()["choices"][0]["references"]
        if seen == expected:
            return seen
        time.sleep(0.02)
    return seen


def test_no_localdocs_call_per_chat_while_the_active_set_is_cached(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway(localdocs_active_cache_ttl_s=30)
    with_clock(client)
    for _ in range(5):
        response = client.post(CHAT, json=chat_body())
        assert response.json()["choices"][0]["references"] is None
    # Nothing active: one lookup filled the cache, and no chat searched.
    assert [p for _, p, _, _ in upstreams.localdocs.requests] == ["/v1/localdocs/active"]


def test_stale_active_set_answers_at_once_and_is_refreshed_in_the_background(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway(localdocs_active_cache_ttl_s=30)
    clock = with_clock(client)
    assert client.post(CHAT, json=chat_body()).json()["choices"][0]["references"] is None
    assert active_lookups(upstreams) == 1

    upstreams.localdocs.active = ["manuals"]
    clock.now += 40  # past the TTL, within the second TTL that may still be served
    stale = client.post(CHAT, json=chat_body())
    # Answered from the cached (empty) set: the chat did not wait for the lookup it started.
    assert stale.json()["choices"][0]["references"] is None
    assert references_until(client, [REFERENCE]) == [REFERENCE]
    assert active_lookups(upstreams) == 2  # one refresh, however many chats came meanwhile

    upstreams.localdocs.active = []
    clock.now += 200  # past both TTLs: too old to use, looked up before answering
    response = client.post(CHAT, json=chat_body())
    assert response.json()["choices"][0]["references"] is None
    assert active_lookups(upstreams) == 3


def test_chats_during_a_slow_refresh_start_no_second_one(upstreams: Upstreams) -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/localdocs/active":
            await asyncio.sleep(0.3)  # slow enough for several chats to come meanwhile
        fake = {"inference-a.test": upstreams.a, "localdocs.test": upstreams.localdocs}
        return fake[request.url.host](request)

    settings = make_settings(localdocs_active_cache_ttl_s=30)
    with TestClient(create_app(settings, transport=httpx.MockTransport(handle))) as client:
        clock = with_clock(client)
        assert client.post(CHAT, json=chat_body()).status_code == 200
        upstreams.localdocs.active = ["manuals"]
        clock.now += 40
        for _ in range(3):
            response = client.post(CHAT, json=chat_body())
            assert response.json()["choices"][0]["references"] is None  # none waited
        assert references_until(client, [REFERENCE]) == [REFERENCE]
    assert active_lookups(upstreams) == 2


def test_activation_through_the_gateway_is_seen_by_the_next_chat(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway(localdocs_active_cache_ttl_s=30)
    clock = with_clock(client)
    assert client.post(CHAT, json=chat_body()).json()["choices"][0]["references"] is None
    clock.now += 40  # stale: a chat now would be answered from the cache...
    put = client.put("/v1/localdocs/active", json={"collections": ["manuals"]})
    assert put.status_code == 200
    # ...but the change made through the gateway drops the cached copy, stale one included.
    response = client.post(CHAT, json=chat_body())
    assert response.json()["choices"][0]["references"] == [REFERENCE]


def test_stale_model_list_answers_while_a_background_call_refreshes_it(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway(models_cache_ttl_s=30)
    clock = with_clock(client)
    assert client.post(CHAT, json=chat_body()).status_code == 200
    assert model_lookups(upstreams) == 1

    clock.now += 40
    upstreams.a.overrides["/v1/models"] = (500, {"error": {"message": "boom", "type": "x"}}, {})
    # Resolved from the cached catalog: the failing refresh happens beside this chat.
    assert client.post(CHAT, json=chat_body()).status_code == 200
    for _ in range(50):
        if model_lookups(upstreams) == 2:
            break
        time.sleep(0.02)
    assert model_lookups(upstreams) == 2
    # The failed refresh dropped the cache: the next chat asks inference and gets its error.
    for _ in range(50):
        response = client.post(CHAT, json=chat_body())
        if response.status_code != 200:
            break
        time.sleep(0.02)
    assert_envelope(response, 500)


def test_unexpected_error_on_the_hot_path_is_a_500_envelope(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = gateway()
    service: GatewayService = client.app.state.service  # type: ignore[attr-defined]

    async def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "retrieve", broken)
    error = assert_envelope(client.post(CHAT, json=chat_body()), 500)
    assert error["type"] == "internal_error"
    assert "secret" not in error["message"] and "Traceback" not in error["message"]
    metrics = client.get("/metrics").text
    assert 'gateway_requests_total{method="POST",route="/v1/chat/completions",status="500"}' in (
        metrics
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, chat_body()),
        ("/v1/completions", {"model": "Gemma 3 270M", "prompt": "Hi"}),
        ("/v1/embeddings", {"input": "Hi"}),
    ],
)
def test_hot_path_routes_keep_api_key_cors_and_metrics(
    gateway: Gateway, path: str, body: dict[str, object]
) -> None:
    client = gateway(api_key="s3cret")
    assert_envelope(client.post(path, json=body), 401)
    headers = {"Authorization": "Bearer s3cret", "Origin": "http://localhost:3000"}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    metrics = client.get("/metrics", headers=headers).text
    assert f'gateway_requests_total{{method="POST",route="{path}",status="200"}} 1.0' in metrics
