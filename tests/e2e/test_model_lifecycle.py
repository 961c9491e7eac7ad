"""Model lifecycle through the gateway (issue #13 item 6): the loaded models with their memory,
unload, load with an idle TTL, on the real stack with the default model, nothing mocked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.e2e

CHAT = "Gemma 3 270M"


@pytest.fixture()
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), timeout=120) as client:
        yield client
        # Leave the default model loaded without a TTL for the other modules.
        client.post(f"/v1/models/{CHAT}/load", json={"ttl": None})


def loaded(api: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = api.get("/v1/loaded_models")
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "list"
    return {model["id"]: model for model in answer.json()["data"]}


def chat(api: httpx.Client) -> httpx.Response:
    return api.post(
        "/v1/chat/completions",
        json={"model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    )


def test_list_unload_and_a_chat_loads_it_again(api: httpx.Client) -> None:
    assert chat(api).status_code == 200
    model = loaded(api)[CHAT]
    assert model["kind"] == "chat" and model["size_bytes"] > 0

    answer = api.post(f"/v1/models/{CHAT}/unload")
    assert answer.status_code == 200, answer.text
    assert answer.json()["unloaded"] is True
    assert CHAT not in loaded(api)

    reply = chat(api)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] is not None
    assert loaded(api)[CHAT]["size_bytes"] == model["size_bytes"]


def test_a_model_loaded_with_a_ttl_unloads_itself_after_idling(api: httpx.Client) -> None:
    answer = api.post(f"/v1/models/{CHAT}/load", json={"ttl": 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ttl"] == 2
    assert loaded(api)[CHAT]["ttl"] == 2
    # A request keeps it: the idle time starts again from its end.
    assert chat(api).status_code == 200
    assert CHAT in loaded(api)
    deadline = time.monotonic() + 30
    while CHAT in loaded(api):
        assert time.monotonic() < deadline, "the model outlived its TTL"
        time.sleep(0.25)
    # And is back on the next request.
    assert chat(api).status_code == 200
    assert CHAT in loaded(api)


def test_an_unknown_model_is_a_404_naming_it(api: httpx.Client) -> None:
    for action in ("load", "unload"):
        answer = api.post(f"/v1/models/no-such-model/{action}")
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert "no-such-model" in error["message"]
        assert error["code"] == "model_not_found"


@pytest.mark.parametrize("ttl", [0, -5, "soon", 10**9])
def test_a_bad_ttl_is_a_400_naming_the_field(api: httpx.Client, ttl: object) -> None:
    answer = api.post(f"/v1/models/{CHAT}/load", json={"ttl": ttl})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "ttl"
